"""The kconfig check on Debian's 6.1 and 6.12 trees: an option the tree lacks is told apart
from one a dependency held off, per-version fragment lines, and a base config of the user's
own (or defconfig) checked for what kpv's guest needs.

Builds no kernel: each test runs the real `make tinyconfig` (or defconfig), merge_config.sh
and olddefconfig on a tree unpacked once into kpv's cache (shared with the other
integration tests), a few seconds each.
"""

from pathlib import Path

import pytest

from pipeline import tree
from pipeline.kernel import kconfig

ROOT = Path(__file__).resolve().parent.parent
GUEST = ROOT / "kconfigs" / "guest.config"
DEFAULT = tuple(ROOT / "kconfigs" / f for f in ("guest.config", "lockdep.config", "mm.config"))

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def src(request) -> tuple[str, Path]:
    return request.param, tree.find_base(f"debian:linux-source-{request.param}").repo


def _gen(src: Path, tmp_path: Path, base: str, *texts: str, required=()) -> kconfig.ConfigResult:
    frags = []
    for i, text in enumerate(texts):
        frags.append(tmp_path / f"extra{i}.config")
        frags[-1].write_text(text)
    return kconfig.generate(src, tmp_path / "gen", base, (GUEST, *frags), tmp_path / "log",
                            required)


def test_default_fragments_stick_on_both_trees(src, tmp_path):
    got = kconfig.generate(src[1], tmp_path / "gen", "tinyconfig", DEFAULT, tmp_path / "log")
    assert got.ok and got.absent == (), got.unmet


def test_an_option_the_tree_lacks_warns_unless_required(src, tmp_path):
    got = _gen(src[1], tmp_path, "tinyconfig", "CONFIG_KPV_NO_SUCH_OPTION=y\n")
    assert got.ok
    assert got.absent == ("CONFIG_KPV_NO_SUCH_OPTION: wanted y, got n (from extra0.config): "
                          "this tree has no such option (removed or renamed?)",)
    got = _gen(src[1], tmp_path, "tinyconfig", "CONFIG_KPV_NO_SUCH_OPTION=y\n",
               required=("CONFIG_KPV_NO_SUCH_OPTION",))
    assert not got.ok and "(required by the job)" in got.unmet[0]


def test_an_option_a_dependency_held_off_names_it(src, tmp_path):
    # The guest fragment asks for NUMA; a later fragment turning SMP off takes it away.
    got = _gen(src[1], tmp_path, "tinyconfig", "# CONFIG_SMP is not set\n")
    assert not got.ok
    numa = [u for u in got.unmet if u.startswith("CONFIG_NUMA:")]
    assert numa and numa[0].startswith("CONFIG_NUMA: wanted y, got n (from guest.config): "
                                       "depends on SMP [=n] (arch/x86/Kconfig:"), got.unmet


def test_slob_is_gone_from_6_12_and_fights_slub_on_6_1(src, tmp_path):
    """A real removal: SLOB left the kernel in 6.4. The per-version line drops it there."""
    version, path = src
    got = _gen(path, tmp_path, "tinyconfig", "CONFIG_EXPERT=y\nCONFIG_SLOB=y\n")
    if version == "6.1":  # SLOB and SLUB are one choice: the later fragment's wins
        assert got.unmet == ("CONFIG_SLUB: wanted y, got n (from guest.config): in a choice "
                             "where CONFIG_SLOB=y won (mm/Kconfig:224)",)
    else:
        assert got.ok and got.absent[0].startswith("CONFIG_SLOB: wanted y, got n")
    got = _gen(path, tmp_path, "tinyconfig", "# kpv: before 4.0\nCONFIG_SLOB=y\n")
    assert got.ok and got.absent == ()


def test_own_config_is_checked_for_the_guests_needs(src, tmp_path):
    # The user's .config: here tinyconfig's own, which boots nothing kpv can talk to.
    kconfig.generate(src[1], tmp_path / "tiny", "tinyconfig", (), tmp_path / "tiny.log")
    own = tmp_path / "tiny" / ".config"
    got = kconfig.generate(src[1], tmp_path / "gen", str(own), (), tmp_path / "log")
    assert not got.ok
    assert ("CONFIG_BLK_DEV_INITRD: kpv's guest needs it for the initramfs, got n: neither "
            "the base config nor a fragment sets it (kconfigs/guest.config does)") in got.unmet
    assert any(u.startswith("CONFIG_SERIAL_8250_CONSOLE: kpv's guest needs it for the serial "
                            "console kpv reads (console=ttyS0), got n: depends on TTY [=n]")
               for u in got.unmet), got.unmet
    assert kconfig.generate(src[1], tmp_path / "gen", str(own), DEFAULT, tmp_path / "log").ok
    assert kconfig.generate(src[1], tmp_path / "gen", "defconfig", DEFAULT, tmp_path / "log").ok
