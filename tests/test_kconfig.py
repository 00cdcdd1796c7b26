from pipeline import kconfig


def test_read_config_and_verify(tmp_path):
    frag = tmp_path / "a.config"
    frag.write_text("# why\nCONFIG_SMP=y\n# CONFIG_MODULES is not set\nCONFIG_NR_CPUS=8\n")
    frag2 = tmp_path / "b.config"
    frag2.write_text("CONFIG_NR_CPUS=4\n")
    want = kconfig.requested((frag, frag2))
    assert want == {"CONFIG_SMP": ("y", "a.config"), "CONFIG_MODULES": ("n", "a.config"),
                    "CONFIG_NR_CPUS": ("4", "b.config")}
    final = kconfig.read_config("CONFIG_SMP=y\nCONFIG_NR_CPUS=4\n# CONFIG_MODULES is not set\n")
    assert kconfig.verify(want, final) == ()
    final = kconfig.read_config("CONFIG_NR_CPUS=64\nCONFIG_MODULES=y\n")
    assert kconfig.verify(want, final) == (
        "CONFIG_SMP: wanted y, got n (from a.config)",
        "CONFIG_MODULES: wanted n, got y (from a.config)",
        "CONFIG_NR_CPUS: wanted 4, got 64 (from b.config)",
    )
