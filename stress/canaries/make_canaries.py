"""Regenerate kpv's canary patches: one lockdep-visible inversion per stress path.

usage: make_canaries.py WORKTREE BASE [OUT]

WORKTREE is a scratch git worktree of Debian's 6.1 tree (it is reset hard to
BASE for every canary: never point this at a tree with work in it); the
patches go to OUT/<canary>/ (default: this folder). Each canary is written
as a small source edit here rather than as a diff, so it is easy to read
and to port to another base.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

WT = Path(sys.argv[1]).resolve()
BASE = sys.argv[2]
OUT = Path(sys.argv[3] if len(sys.argv) > 3 else Path(__file__).parent).resolve()
ENV = {"GIT_AUTHOR_NAME": "kpv", "GIT_AUTHOR_EMAIL": "kpv@localhost",
       "GIT_COMMITTER_NAME": "kpv", "GIT_COMMITTER_EMAIL": "kpv@localhost",
       "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
       "PATH": "/usr/bin:/bin"}

def git(*a):
    return subprocess.run(["git", "-C", str(WT), *a], check=True, capture_output=True,
                          text=True, env=ENV).stdout

def edit(path, old, new):
    p = WT / path
    text = p.read_text()
    assert text.count(old) == 1, (path, old)
    p.write_text(text.replace(old, new))

# Where a canary's first order is recorded on every boot: the first anonymous fault, or
# a fork of a process with anonymous memory (beside series that rewrite the fault path).
FIRST = {
    "prepare": ("__anon_vma_prepare() (the first anonymous fault of every process, so every "
                "boot)", "\t\tallocated = anon_vma;\n\t}\n\n",
                "\tanon_vma_lock_write(anon_vma);\n"),
    "fork": ("anon_vma_fork() (every fork of a process with anonymous memory, so every boot)",
             "\tvma->anon_vma = anon_vma;\n", "\tanon_vma_lock_write(anon_vma);\n"),
}

def rmap_common(name, site, first="prepare"):
    where, before, lock = FIRST[first]
    words = (f"kpv canary \"{name}\": a lockdep-only lock class, never a real lock. "
             f"{where} records kpv_canary_{name} -> &anon_vma->rwsem; {site} records the "
             f"reverse order, so lockdep reports a circular dependency as soon as that path "
             f"runs, while a plain boot stays clean. Being annotations only, the two orders "
             f"can never really deadlock.")
    comment = "".join(f" * {line}\n" for line in textwrap.wrap(words, 72))
    caches = ("static struct kmem_cache *anon_vma_cachep;\n"
              "static struct kmem_cache *anon_vma_chain_cachep;\n")
    edit("mm/rmap.c", caches, caches + "\n"
         f"/*\n{comment} */\n"
         "static struct lock_class_key kpv_canary_key;\n"
         f"struct lockdep_map kpv_canary_{name}_map =\n"
         f"\tSTATIC_LOCKDEP_MAP_INIT(\"kpv_canary_{name}\", &kpv_canary_key);\n")
    edit("mm/rmap.c", before + lock,
         before + f"\tlock_map_acquire(&kpv_canary_{name}_map);\n"
         + lock + f"\tlock_map_release(&kpv_canary_{name}_map);\n")

def reverse(name, indent="\t"):
    return (f"{indent}lock_map_acquire(&kpv_canary_{name}_map);\n"
            f"{indent}lock_map_release(&kpv_canary_{name}_map);\n")

def extern(path, name, after):
    edit(path, after, after + f"\n/* kpv canary: defined in mm/rmap.c */\n"
         f"extern struct lockdep_map kpv_canary_{name}_map;\n")

def migration_reverse(name, first="prepare"):
    rmap_common(name, "try_to_migrate_one() (page migration's rmap walk, anon_vma held)", first)
    anchor = ("\t/*\n\t * When racing against e.g. zap_pte_range() on another cpu,\n"
              "\t * in between its ptep_get_and_clear_full() and page_remove_rmap(),\n"
              "\t * try_to_migrate() may return")
    flags = "\tenum ttu_flags flags = (enum ttu_flags)(long)arg;\n\n"
    edit("mm/rmap.c", flags + anchor,
         flags + "\t/* kpv canary: the reverse order, on migration's rmap walk only */\n"
         "\tif (folio_test_anon(folio) && !(flags & TTU_RMAP_LOCKED)) {\n"
         + reverse(name, "\t\t") + "\t}\n\n" + anchor)

CANARIES = {}

def canary(fn):
    CANARIES[fn.__name__.removeprefix("c_")] = fn
    return fn

@canary
def c_migration():
    migration_reverse("migration")
    return ("mm: kpv canary: lock inversion on the migration rmap walk",
            "Migration's try_to_migrate_one() takes a lockdep-only canary lock\n"
            "while the anon_vma lock is held for the rmap walk; every anonymous\n"
            "first fault takes them in the other order.  Only page migration\n"
            "(move_pages, mbind, migrate_pages, compaction) reaches it.")

@canary
def c_forkmigration():
    # The anon-vma-lock series rewrites __anon_vma_prepare(): this one applies beside it,
    # a base that already has a bug for kpv's baseline comparison.
    migration_reverse("forkmigration", first="fork")
    return ("mm: kpv canary: migration inversion, first order at fork",
            "Migration's try_to_migrate_one() takes a lockdep-only canary lock\n"
            "while the anon_vma lock is held for the rmap walk; anon_vma_fork()\n"
            "takes them in the other order on every fork.  Only page migration\n"
            "reaches it.  Unlike the migration canary it leaves\n"
            "__anon_vma_prepare() alone, so the anon-vma-lock series applies on\n"
            "top: a base that already has a bug.")

@canary
def c_mremap():
    rmap_common("mremap", "take_rmap_locks() (mremap moving page tables with the rmap locks)")
    extern("mm/mremap.c", "mremap", '#include "internal.h"\n')
    edit("mm/mremap.c", "\tif (vma->anon_vma)\n\t\tanon_vma_lock_write(vma->anon_vma);\n}\n",
         "\tif (vma->anon_vma) {\n\t\tanon_vma_lock_write(vma->anon_vma);\n"
         "\t\t/* kpv canary: the reverse order, when mremap needs the rmap locks */\n"
         + reverse("mremap", "\t\t") + "\t}\n}\n")
    return ("mm: kpv canary: lock inversion in mremap's rmap locking",
            "take_rmap_locks() takes a lockdep-only canary lock inside the anon_vma\n"
            "lock; every anonymous first fault takes them in the other order.  Only\n"
            "mremap() moving a range back next to its old neighbours (need_rmap_locks)\n"
            "reaches it: VMA churn.")

@canary
def c_widefork():
    rmap_common("widefork", "anon_vma_fork() when the root anon_vma has 16 or more children")
    edit("mm/rmap.c", "\tanon_vma->parent->num_children++;\n",
         "\tanon_vma->parent->num_children++;\n"
         "\t/* kpv canary: the reverse order, only in a wide fork tree */\n"
         "\tif (anon_vma->root->num_children > 16) {\n" + reverse("widefork", "\t\t") + "\t}\n")
    return ("mm: kpv canary: lock inversion in anon_vma_fork of a wide tree",
            "anon_vma_fork() takes a lockdep-only canary lock inside the anon_vma\n"
            "lock once the root anon_vma has more than 16 children alive, i.e. when\n"
            "one process has forked 16 or more children sharing its memory; every\n"
            "anonymous first fault takes them in the other order.")

@canary
def c_deepstack():
    rmap_common("deepstack", "expand_downwards() growing a stack beyond 1 MiB")
    extern("mm/mmap.c", "deepstack", '#include "internal.h"\n')
    edit("mm/mmap.c", "\tanon_vma_lock_write(vma->anon_vma);\n\n\t/* Somebody else might have raced"
         " and expanded it already */\n\tif (address < vma->vm_start) {\n",
         "\tanon_vma_lock_write(vma->anon_vma);\n"
         "\t/* kpv canary: the reverse order, only for stacks beyond 1 MiB */\n"
         "\tif (vma->vm_end - address > (1UL << 20)) {\n" + reverse("deepstack", "\t\t") +
         "\t}\n\n\t/* Somebody else might have raced and expanded it already */\n"
         "\tif (address < vma->vm_start) {\n")
    return ("mm: kpv canary: lock inversion in deep stack growth",
            "expand_downwards() takes a lockdep-only canary lock inside the anon_vma\n"
            "lock when the stack grows beyond 1 MiB; every anonymous first fault\n"
            "takes them in the other order.  Boot-time stacks stay far smaller.")

@canary
def c_thp():
    rmap_common("thp", "collapse_huge_page() (khugepaged and MADV_COLLAPSE)")
    extern("mm/khugepaged.c", "thp", '#include "mm_slot.h"\n')
    edit("mm/khugepaged.c", "\tanon_vma_lock_write(vma->anon_vma);\n\n\tmmu_notifier_range_init(",
         "\tanon_vma_lock_write(vma->anon_vma);\n"
         "\t/* kpv canary: the reverse order, when a THP is collapsed */\n"
         + reverse("thp") + "\n\tmmu_notifier_range_init(")
    return ("mm: kpv canary: lock inversion in THP collapse",
            "collapse_huge_page() takes a lockdep-only canary lock inside the\n"
            "anon_vma lock; every anonymous first fault takes them in the other\n"
            "order.  Only khugepaged or MADV_COLLAPSE collapsing a THP reaches it.")

for name, fn in CANARIES.items():
    git("checkout", "-q", "--detach", BASE)
    git("reset", "-q", "--hard", BASE)
    subject, body = fn()
    note = "Not for merging: a kpv canary, proving its stress test reaches the path."
    git("commit", "-q", "-a", "-m", f"{subject}\n\n{body}\n\n{note}")
    d = OUT / name
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob("*.patch"):
        old.unlink()
    git("format-patch", "-q", "--no-signature", "-1", "-o", str(d))
    print(name, sorted(p.name for p in d.glob("*.patch")))
git("checkout", "-q", "--detach", BASE)
