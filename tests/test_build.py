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
