"""Reading a requested option's conditions: per-version fragment lines, and Kconfig
expressions evaluated and shown as menuconfig shows them. The expressions are the tree's
own: `depends on` lines of Debian's linux-source-6.1 (lib/Kconfig.debug, arch/x86/Kconfig,
drivers/tty/serial/8250/Kconfig)."""

from pipeline.kernel import kconfig, kconfigdeps

FRAGMENT = """\
# SLOB went in 6.4; SLUB_TINY is what small configs use since.
# kpv: before 6.4
# CONFIG_SLOB is not set
# kpv: since 6.4
CONFIG_SLUB_TINY=y
CONFIG_SMP=y
"""


def test_lines_for_other_kernels_become_comments_in_place():
    old = kconfig.for_version(FRAGMENT, (6, 1))
    new = kconfig.for_version(FRAGMENT, (6, 12))
    assert kconfig.read_config(old) == {"CONFIG_SLOB": "n", "CONFIG_SMP": "y"}
    assert kconfig.read_config(new) == {"CONFIG_SLUB_TINY": "y", "CONFIG_SMP": "y"}
    # Numbered as the fragment is: an error at line 5 of the copy is line 5 of the file.
    assert len(new.splitlines()) == len(FRAGMENT.splitlines())
    assert new.splitlines()[2] == "# kpv: not for 6.12: # CONFIG_SLOB is not set"
    assert kconfig.read_config(kconfig.for_version(FRAGMENT, (6, 4))) == kconfig.read_config(new)


CONFIG = {"CONFIG_DEBUG_KERNEL": "y", "CONFIG_X86_64": "y", "CONFIG_SERIAL_8250": "m",
          "CONFIG_TTY": "y", "CONFIG_PREEMPT_RT": "n"}


def test_expressions_evaluate_in_tristate_logic():
    ev = kconfigdeps.evaluate
    assert ev("DEBUG_KERNEL && LOCK_DEBUGGING_SUPPORT", CONFIG) == 0
    assert ev("X86_64 || (X86_32 && HIGHMEM64G && X86_BIGSMP)", CONFIG) == 2
    assert ev("TTY", CONFIG) == 2 and ev("SERIAL_8250", CONFIG) == 1
    assert ev("SERIAL_8250=y", CONFIG) == 0 and ev("SERIAL_8250!=y", CONFIG) == 2
    assert ev("!PREEMPT_RT", CONFIG) == 2 and ev("!SERIAL_8250", CONFIG) == 1
    assert ev("TTY && SERIAL_8250", CONFIG) == 1  # m: the most a module dependency allows
    # arch/x86/Kconfig's 64BIT prompt: `if "$(ARCH)" = "x86"`, and kpv builds ARCH=x86_64.
    assert ev('"$(ARCH)" = "x86"', CONFIG) == 0 and ev('"$(SRCARCH)" = "x86"', CONFIG) == 2
    # Not understood: never a wrong answer.
    assert ev("$(cc-option,-mno-red-zone)", CONFIG) is None
    assert ev("NR_CPUS > 1", CONFIG) is None
    assert ev("(TTY", CONFIG) is None


def test_annotation_is_menuconfigs():
    assert kconfigdeps.annotate("DEBUG_KERNEL && LOCK_DEBUGGING_SUPPORT", CONFIG) == (
        "DEBUG_KERNEL [=y] && LOCK_DEBUGGING_SUPPORT [=n]")
    assert kconfigdeps.annotate("SERIAL_8250=y && !PREEMPT_RT", CONFIG) == (
        "SERIAL_8250 [=m]=y && !PREEMPT_RT [=n]")
    assert kconfigdeps.annotate('X86 && $(cc-option,-mfoo) && "a b" = y', CONFIG) == (
        'X86 [=n] && $(cc-option,-mfoo) && "a b" = y')
