from pipeline.build import first_error

# As gcc 12 prints it in an O= build of Debian's 6.1 tree (srctree absolute).
HEADER_ERROR = """\
  CC      init/main.o
In file included from /src/wt/include/linux/mm.h:20,
                 from /src/wt/include/linux/memcontrol.h:20,
                 from /src/wt/init/main.c:25:
/src/wt/include/linux/rmap.h:118:9: error: request for member 'dep_map' in something \
not a structure or union
  118 |         down_write_nest_lock(&anon_vma->root->rwsem, nest_lock);
make[2]: *** [/src/wt/scripts/Makefile.build:250: init/main.o] Error 1
"""


def test_first_error_names_header_and_compiled_file():
    from pathlib import Path

    assert first_error(HEADER_ERROR, Path("/src/wt")) == (
        "include/linux/rmap.h:118: error: request for member 'dep_map' in something not a "
        "structure or union (compiling init/main.c)"
    )


def test_first_error_plain_and_fallbacks():
    log = "../mm/mmap.c:12:3: error: 'x' undeclared\nmm/rmap.c:1:1: error: second\n"
    assert first_error(log) == "mm/mmap.c:12: error: 'x' undeclared"
    assert first_error("ld: vmlinux.o: undefined reference to `foo'\n") == (
        "ld: vmlinux.o: undefined reference to `foo'")
    assert first_error("make: *** [Makefile:1] Error 2\n") == "make: *** [Makefile:1] Error 2"
    assert first_error("") == "build failed (see build.log)"


FAKE_MAKEFILE = """\
# A stand-in kernel tree: real make, the same O= layout as Kbuild.
bzImage:
\t@echo built >> $(O)/runs
\t@if [ -n "$(FAIL)" ]; then echo 'mm/mmap.c:7:3: error: boom' >&2; exit 1; fi
\t@mkdir -p $(O)/arch/x86/boot $(O)/include/config
\t@echo kernel > $(O)/arch/x86/boot/bzImage
\t@echo symbols > $(O)/vmlinux
\t@echo 6.1.0-fake > $(O)/include/config/kernel.release
"""


def fake_tree(tmp_path, fail: bool = False):
    tree = tmp_path / "tree"
    tree.mkdir()
    text = FAKE_MAKEFILE.replace("$(FAIL)", "1" if fail else "")
    (tree / "Makefile").write_text(text)
    build_dir = tmp_path / "b"
    build_dir.mkdir()
    return tree, build_dir


def test_build_then_reuse_by_content_key(tmp_path):
    from pipeline.build import build

    tree, bdir = fake_tree(tmp_path)
    store = tmp_path / "store" / "key1"
    first = build(tree, bdir, tmp_path / "out1", 60, store)
    assert first.ok and not first.cached and first.release == "6.1.0-fake"
    assert (tmp_path / "out1" / "bzImage").read_text() == "kernel\n"
    second = build(tree, bdir, tmp_path / "out2", 60, store)
    assert second.ok and second.cached
    assert (tmp_path / "out2" / "bzImage").read_text() == "kernel\n"
    assert second.vmlinux.read_text() == "symbols\n"
    assert (bdir / "runs").read_text() == "built\n"  # make ran once


def test_failed_build_is_kept_and_reused_with_its_error(tmp_path):
    from pipeline.build import build

    tree, bdir = fake_tree(tmp_path, fail=True)
    store = tmp_path / "store" / "key2"
    first = build(tree, bdir, tmp_path / "out1", 60, store)
    assert not first.ok and first.error == "mm/mmap.c:7: error: boom"
    second = build(tree, bdir, tmp_path / "out2", 60, store)
    assert second.cached and not second.ok and second.error == first.error
    assert "error: boom" in (tmp_path / "out2" / "build.log").read_text()


def test_damaged_stored_kernel_is_rebuilt_and_says_why(tmp_path):
    from pipeline.build import build

    tree, bdir = fake_tree(tmp_path)
    store = tmp_path / "store" / "key3"
    assert build(tree, bdir, tmp_path / "out1", 60, store).ok
    (store / "bzImage").write_text("kern")  # cut short, as by a disk that filled
    again = build(tree, bdir, tmp_path / "out2", 60, store)
    assert again.ok and not again.cached
    assert again.damaged == "bzImage is 4 bytes, 7 when stored"
    assert (bdir / "runs").read_text() == "built\nbuilt\n"
    assert (tmp_path / "out2" / "bzImage").read_text() == "kernel\n"
    # The entry stored again is whole: the next run reuses it.
    assert build(tree, bdir, tmp_path / "out3", 60, store).cached
    (store / "vmlinux").write_text("symbolz\n")  # same size, other bytes
    assert build(tree, bdir, tmp_path / "out4", 60, store).damaged == (
        "vmlinux differs from what was stored (sha256)")


def test_full_output_folder_keeps_no_partial_kernel(tmp_path, tmpfs):
    import errno

    import pytest

    from pipeline.build import build

    tree, bdir = fake_tree(tmp_path)
    # A 2 MiB kernel, as big as a real tinyconfig bzImage, for a 1 MiB folder.
    (tree / "Makefile").write_text((tree / "Makefile").read_text().replace(
        "@echo kernel > $(O)/arch/x86/boot/bzImage",
        "@head -c 2097152 /dev/zero > $(O)/arch/x86/boot/bzImage"))
    out = tmpfs(1024)
    (out / "bzImage").write_text("an earlier run's kernel\n")
    with pytest.raises(OSError) as e:
        build(tree, bdir, out, 60, tmp_path / "store" / "key4")
    assert e.value.errno == errno.ENOSPC
    assert sorted(p.name for p in out.iterdir()) == ["build.log"]


def test_build_that_fills_the_disk_is_the_machines_fault(tmp_path):
    import pytest

    from pipeline.build import build
    from pipeline.errors import InfraError

    tree, bdir = fake_tree(tmp_path)
    (tree / "Makefile").write_text(
        "bzImage:\n\t@echo 'mm/mmap.o: No space left on device' >&2; exit 1\n")
    with pytest.raises(InfraError, match="no space left on device while building"):
        build(tree, bdir, tmp_path / "out", 60, tmp_path / "store" / "key5")
    assert not (tmp_path / "store" / "key5").exists()
