"""The whole pipeline for a job: per revision apply, kconfig, build, then each cell.

Stages hand plain values on; the Run is saved (by the caller's save) after
the build stages and after every test, so an interrupted run keeps every test
that finished.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from pipeline import (
    atomic,
    basecheck,
    build,
    cache,
    guest,
    mailseries,
    packaged,
    provenance,
    series,
    tree,
    vm,
)
from pipeline import job as jobmod
from pipeline.job import Job
from pipeline.kernel import kconfig, lockorder
from pipeline.results import Case, FirstBad, Run, Seen, Status, Suite
from pipeline.run import cell


@dataclass(frozen=True)
class Context:
    """What every revision shares, prepared once."""

    job: Job
    base: tree.Base
    worktree: Path
    accel: str
    tests: list[guest.GuestTest]
    initrd: Path
    build_dir: Path
    gen_dir: Path
    out: Path


def prepare(job: Job, run: Run, progress: Callable[[str], None]) -> Context:
    """Everything that can fail for reasons of the machine, before the first build."""
    settings = jobmod.guest_settings(job)
    tests = [guest.stress_test(t, job.duration, job.seed, settings, job.repeats)
             for t in job.tests]  # an unknown test is refused before anything slow
    vm.qemu_binary()
    accel, why = vm.probe_accel(job.accel)
    progress(f"accelerator: {accel}: {why}")
    progress("tree: finding the base")
    base = tree.find_base(job.tree, job.ref)
    wt = tree.worktree(base)
    progress("guest: building stress programs and initramfs")
    bins = guest.build_stress(packaged.STRESS_SRC, cache.root() / "stress")
    initrd = guest.build_initramfs(tests, job.out / "initramfs.cpio", bins, settings=settings)
    own = Path(job.kconfig_base)  # the user's .config: its content, not its name, is the key
    frag_key = cache.key(job.kconfig_base, *([own.read_bytes()] if own.is_absolute() else []),
                         *(f.read_bytes() for f in job.fragments))
    builds = cache.root() / "builds" / f"{wt.name}-{frag_key}"  # shared as the worktree is
    run.properties.update({
        "base": base.describe, "base_commit": base.commit, "accel": accel,
        "accel_reason": why, "host": platform.node(), "job": str(job.path),
        # An earlier run's baseline stands for this one only with the same config inputs.
        "kconfig_inputs": frag_key, "gate": job.gate,
        **provenance.record(),
    })
    return Context(job, base, wt, accel, tests, initrd, builds / "build", builds / "kconfig",
                   job.out)


def judging(job: Job, rev: series.Revision, baseline: frozenset[str]) -> cell.Judging:
    """How the job judges a revision's reports against the baseline's signatures; the
    baseline itself is judged as it is, every report failing."""
    if rev.name == series.BASELINE:
        return cell.Judging()
    return cell.Judging(baseline, job.gate == "new", job.confirm, job.fail_intermittent)


def run_revision(ctx: Context, rev: series.Revision, run: Run,
                 progress: Callable[[str], None], cells: list[int],
                 save: Callable[[], None], judge: cell.Judging) -> Context:
    """apply → kconfig → build → cells; each stage's outcome becomes a case.

    save() writes the run as it stands: after the build stages, and after
    each test of each cell. Returns the context for the next revision: on TCG
    if KVM had to be given up.
    """
    rdir = ctx.out / rev.name
    rdir.mkdir(parents=True, exist_ok=True)
    suite = run.add(Suite(cell.suite_name(rev.name), rev.name, None, _rev_props(ctx, rev)))
    with tree.locked(ctx.worktree, progress):
        kernel = _build_stages(ctx, rev, rdir, suite, run, progress)
    save()

    def checkpoint(s: Suite) -> None:
        s.properties.update(suite.properties)
        run.add(s)
        save()

    for n in cells:
        if kernel is None:
            run.add(_skipped_cell(ctx, rev.name, n, suite))
            save()
            continue
        t0 = time.monotonic()
        spec = cell.CellSpec(rev.name, n, kernel.bzimage, kernel.vmlinux, ctx.initrd,
                             ctx.job.memory_mb, ctx.job.numa_nodes, ctx.accel,
                             ctx.job.boot_timeout, ctx.job.test_slack)
        s = cell.run(spec, ctx.tests, ctx.out, f"{rev.name}/vcpus-{n}", progress, checkpoint,
                     judge)
        if "accel_fallback" in s.properties:
            ctx = replace(ctx, accel="tcg")
            run.properties["accel"] = "tcg"
            run.properties["accel_reason"] = s.properties["accel_fallback"]
        _stage_time(run, "boot+run", t0)
        save()
    return ctx


def bisect(ctx: Context, rev: series.Revision, run: Run, progress: Callable[[str], None],
           save: Callable[[], None]) -> None:
    """A revision of several patches with a new report: find and record which patch made
    it (in the comparison, and as a property of the revision's suite for dashboards)."""
    found = run.comparison.get(rev.name)
    if not (ctx.job.bisect and found and found.reports.new and len(rev.patches) > 1):
        return
    bad = first_bad_patch(ctx, rev, found.reports.new[0], run, progress)
    run.comparison[rev.name] = replace(found, first_bad_patch=bad)
    suite = next(s for s in run.suites if s.name == cell.suite_name(rev.name))
    suite.properties["first_bad_patch"] = f"{bad.index}/{bad.of} {bad.subject}"
    progress(f"{rev.name}: first bad patch: {bad.index}/{bad.of} {bad.subject} "
             f"({'; '.join(bad.probes)})")
    save()


def first_bad_patch(ctx: Context, rev: series.Revision, new: Seen, run: Run,
                    progress: Callable[[str], None]) -> FirstBad:
    """The first patch of `rev` whose prefix shows the `new` report: prefixes bisected,
    each built (kernels are cached by content) and booted on the test and vCPU count
    where the report first showed, up to 1 + confirm boots before calling it absent."""
    vcpus, _, where = new.cells[0].partition("/")
    tests = [t for t in ctx.tests if t.name == where] or ctx.tests[:1]  # "boot": any test
    n = len(rev.patches)
    good, bad = 0, n  # the baseline lacks the report; the whole revision has it
    probes: dict[int, str] = {}
    t0 = time.monotonic()
    while bad - good > 1:
        k = (good + bad) // 2
        shown, probes[k] = _probe(ctx, rev, k, int(vcpus.removeprefix("vcpus_")), tests,
                                  new.signature, progress)
        good, bad = (good, k) if shown else (k, bad)
    _stage_time(run, "bisect", t0)
    info = rev.info[bad - 1] if bad <= len(rev.info) else None
    subject = info.subject if info else _subject(rev.patches[bad - 1])
    return FirstBad(bad, n, rev.patches[bad - 1].name, subject, new.signature,
                    [probes[k] for k in sorted(probes)])


def _probe(ctx: Context, rev: series.Revision, k: int, vcpus: int,
           tests: list[guest.GuestTest], signature: str,
           progress: Callable[[str], None]) -> tuple[bool, str]:
    """Does the revision's first k patches' kernel show the report; and what was seen."""
    n = len(rev.patches)
    part = replace(rev, name=f"{rev.name}-{k}of{n}", patches=rev.patches[:k],
                   info=rev.info[:k])
    rdir = ctx.out / rev.name / "bisect" / f"{k}of{n}"
    rdir.mkdir(parents=True, exist_ok=True)
    progress(f"{rev.name}: bisect: patches 1-{k} of {n}")
    suite = Suite(cell.suite_name(part.name), part.name)
    with tree.locked(ctx.worktree, progress):
        kernel = _build_stages(ctx, part, rdir, suite, Run("", ""), progress)
    if kernel is None:
        failed = next(c for c in suite.cases if c.status != Status.PASS)
        return False, f"{k}/{n}: {failed.name} failed ({failed.message}): taken as not shown"
    spec = cell.CellSpec(part.name, vcpus, kernel.bzimage, kernel.vmlinux, ctx.initrd,
                         ctx.job.memory_mb, ctx.job.numa_nodes, ctx.accel,
                         ctx.job.boot_timeout, ctx.job.test_slack)
    boots = 1 + ctx.job.confirm
    for i in range(1, boots + 1):
        s = cell.run(spec, tests, ctx.out, f"{rev.name}/bisect/{k}of{n}/vcpus-{vcpus}-boot{i}",
                     progress)
        if any(r.signature == signature for c in s.cases for r in c.reports):
            return True, f"{k}/{n}: shown (boot {i})"
    return False, f"{k}/{n}: not shown in {boots} boot(s)"


def _subject(patch: Path) -> str:
    """A patch file's subject, without its [PATCH ...] prefix."""
    with open(patch, "rb") as f:
        subject = email.message_from_binary_file(f, policy=email.policy.default).get(
            "Subject", "")
    return mailseries.parse_subject(str(subject)).title or patch.name


def _build_stages(ctx: Context, rev: series.Revision, rdir: Path, suite: Suite, run: Run,
                  progress: Callable[[str], None]) -> build.BuildResult | None:
    """The kernel built for this revision, or None when a stage failed."""
    progress(f"{rev.name}: apply ({len(rev.patches)} patches)")
    t0 = time.monotonic()
    # Before applying: do the series' index blobs say it was made against this base?
    fit = basecheck.check(ctx.base.repo, ctx.base.commit, list(rev.patches)).summary()
    applied = tree.apply(ctx.worktree, ctx.base, list(rev.patches), keep=rdir / "applied")
    atomic.write(rdir / "apply.log", f"base check: {fit}\n{applied.log}".encode())
    case = Case("apply", time=time.monotonic() - t0, artifacts=[
        f"{rev.name}/apply.log", *(f"{rev.name}/applied/{p.name}" for p in applied.kept)])
    case.properties["patches"] = str(len(rev.patches))
    case.properties["base_check"] = fit
    # Which strategy each patch needed: a mangled mail is applied, but a reviewer should know.
    case.properties["strategy"] = applied.strategy
    for i, (name, strategy) in enumerate(applied.strategies, 1):
        case.properties[f"strategy_{i}"] = f"{name}: {strategy}"
    if rev.quoted:
        case.properties["quoted"] = f"recovered from a quote, not the author's mail: {rev.origin}"
    if not applied.ok:
        _set(case, Status.FAIL, "apply-error", applied.message, applied.log)
    suite.cases.append(case)
    _stage_time(run, "apply", t0)
    if not applied.ok:
        return _skip_rest(suite, f"not configured: {applied.message}", ("kconfig", "build"))
    # As this revision's tree has it: a series may change the order it documents.
    suite.lock_order = [list(pair) for pair in lockorder.documented(ctx.worktree)]

    progress(f"{rev.name}: kconfig")
    t0 = time.monotonic()
    conf = kconfig.generate(ctx.worktree, ctx.gen_dir, ctx.job.kconfig_base, ctx.job.fragments,
                            rdir / "kconfig.log", ctx.job.kconfig_required)
    case = Case("kconfig", time=time.monotonic() - t0, artifacts=[f"{rev.name}/kconfig.log"])
    if conf.error:  # no .config came out: the tree's Kconfig is broken
        _set(case, Status.FAIL, "kconfig-error", conf.error, (rdir / "kconfig.log").read_text())
    else:
        atomic.copy(conf.config, rdir / ".config")
        case.artifacts.append(f"{rev.name}/.config")
        # Which config a result came from, comparable across runs and machines.
        digest = hashlib.sha256(conf.config.read_bytes()).hexdigest()
        case.properties["config_sha256"] = suite.properties["config_sha256"] = digest
    if conf.absent:  # fragments written for other kernels: said, not failed
        case.properties["kconfig_absent"] = "; ".join(conf.absent)
        progress(f"{rev.name}: kconfig: {len(conf.absent)} requested option(s) not in this "
                 f"tree: {conf.absent[0]}")
    if conf.unmet:
        msg = f"{len(conf.unmet)} requested options did not stick: {conf.unmet[0]}"
        _set(case, Status.FAIL, "kconfig-error", msg, "\n".join(conf.unmet))
    suite.cases.append(case)
    _stage_time(run, "kconfig", t0)
    if not conf.ok:
        why = "no config" if conf.error else "the config is not what was asked for"
        return _skip_rest(suite, f"not built: {why}", ("build",))
    kconfig.install(conf.config, ctx.build_dir)

    progress(f"{rev.name}: build (make -j bzImage)")
    t0 = time.monotonic()
    key = cache.key(build.RECIPE, tree.tree_id(ctx.worktree),
                    (ctx.build_dir / ".config").read_bytes())
    b = build.build(ctx.worktree, ctx.build_dir, rdir, ctx.job.build_timeout,
                    cache.root() / "kernels" / key)
    case = Case("build", time=b.duration, artifacts=[f"{rev.name}/build.log"])
    if b.cached:
        case.properties["cached"] = f"same sources and config as an earlier build ({key})"
    if b.damaged:
        case.properties["cache_damaged"] = f"the stored build ({key}) was rebuilt: {b.damaged}"
        progress(f"{rev.name}: stored build {key} not reused: {b.damaged}; rebuilt")
    if b.ok:
        case.properties["kernel_release"] = b.release
        suite.properties["kernel_release"] = b.release
    else:
        _set(case, Status.ERROR if b.timed_out else Status.FAIL, "build-error", b.error,
             _log_tail(rdir / "build.log"))
    suite.cases.append(case)
    _stage_time(run, "build", t0)
    how = "reused" if b.cached else f"{b.duration:.0f} s"
    progress(f"{rev.name}: build {'ok' if b.ok else 'FAILED: ' + b.error} ({how})")
    return b if b.ok else None


def _rev_props(ctx: Context, rev: series.Revision) -> dict[str, str]:
    props = {"revision": rev.name, "base": ctx.base.describe, "base_commit": ctx.base.commit}
    for i, p in enumerate(rev.patches, 1):
        props[f"patch_{i}"] = f"{p.name} sha256:{hashlib.sha256(p.read_bytes()).hexdigest()[:16]}"
    if rev.expect:
        props["expect"] = rev.expect
    return props


def _set(case: Case, status: Status, kind: str, message: str, text: str) -> None:
    case.status, case.kind, case.message, case.text = status, kind, message, text


def _skip_rest(suite: Suite, why: str, names: tuple[str, ...]) -> None:
    for name in names:
        suite.cases.append(Case(name, Status.SKIP, message=why))
    return None


def _skipped_cell(ctx: Context, rev: str, vcpus: int, rev_suite: Suite) -> Suite:
    """A cell that cannot run still shows, so a dashboard does not lose it."""
    failed = next((c for c in rev_suite.cases if c.status != Status.PASS), None)
    why = f"not run: {failed.name} failed" if failed else "not run"
    if failed and failed.message:
        why += f": {failed.message}"
    s = Suite(cell.suite_name(rev, vcpus), rev, vcpus, dict(rev_suite.properties))
    s.cases = [Case(n, Status.SKIP, message=why) for n in ["boot", *(t.name for t in ctx.tests)]]
    return s


def _log_tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _stage_time(run: Run, stage: str, t0: float) -> None:
    run.stage_times[stage] = run.stage_times.get(stage, 0.0) + time.monotonic() - t0


def new_run(job: Job) -> Run:
    started = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "")
    return Run(job.name, started)

