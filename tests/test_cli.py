"""The command line as a user runs it: real subprocesses, one-line errors, results on stdout."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import datafactory
from tests.conftest import qa_rows, sft_recipe

pytestmark = pytest.mark.slow


def cli(project, *args, check=True):
    proc = subprocess.run([sys.executable, "-m", "datafactory", "--data", str(project.data), "--recipes",
                           str(project.recipes), *args], capture_output=True, text=True, cwd=project.root)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def cli_project(project):
    project.jsonl("qa.jsonl", qa_rows(40))
    project.recipe("sft", sft_recipe())
    return project


def test_build_prints_ref_last_then_noop(cli_project):
    first = cli(cli_project, "build", "sft")
    ref = first.stdout.strip().splitlines()[-1]
    assert ref.startswith("sft@") and "steps[1].filter" in first.stderr
    second = cli(cli_project, "--quiet", "build", "sft")
    assert second.stdout.strip() == ref and second.stderr == ""


def test_a_noop_build_never_loads_polars_and_a_real_one_does(cli_project):
    """polars loads on first use in the CLI (a tenth of a second of every no-op build otherwise)."""
    code = ("import sys, datafactory.cli as c\n"
            "try:\n    c.main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(type(sys.modules['polars']).__name__)")
    args = [sys.executable, "-c", code, "--data", str(cli_project.data), "--recipes", str(cli_project.recipes), "-q",
            "build", "sft"]
    first = subprocess.run(args, capture_output=True, text=True, cwd=cli_project.root)
    assert first.stdout.split()[-1] == "module" and first.stdout.startswith("sft@"), first.stderr  # it built
    again = subprocess.run(args, capture_output=True, text=True, cwd=cli_project.root)
    assert again.stdout.split() == [first.stdout.split()[0], "LazyModule"], again.stderr


def test_the_program_exits_fast_yet_runs_exit_handlers_and_keeps_exit_codes(cli_project):
    """`run` (the console script, `python -m datafactory`) ends the process without the interpreter's teardown,
    after the exit handlers and with the output flushed; a thread still running gets the usual exit, which waits
    (the thread outlives a no-op build: 0.5-0.7 s here where no .pyc is written, so it sleeps 1.2 s)."""
    code = ("import atexit, os, sys, threading, time, datafactory.cli as c\n"
            "atexit.register(lambda: print('handler ran'))\n"
            "sys.addaudithook(lambda event, _, write=os.write: event == 'cpython.PyInterpreterState_Clear'\n"
            "                 and write(1, b'torn down\\n'))\n"
            "if sys.argv.pop(1) == 'thread':\n"
            "    threading.Thread(target=lambda: (time.sleep(1.2), print('thread done'))).start()\n"
            "sys.argv[0] = 'datafactory'\nc.run()\nprint('not reached')")
    for first in ("fast", "thread"):
        args = [sys.executable, "-c", code, first, "--data", str(cli_project.data), "--recipes", str(cli_project.recipes)]
        built = subprocess.run([*args, "-q", "build", "sft"], capture_output=True, text=True, cwd=cli_project.root)
        out = built.stdout.splitlines()
        assert built.returncode == 0 and out[0].startswith("sft@"), built.stderr
        assert out[1:] == (["handler ran"] if first == "fast" else ["thread done", "handler ran", "torn down"])
        bad = subprocess.run([*args, "build", "nope"], capture_output=True, text=True, cwd=cli_project.root)
        assert bad.returncode == 1 and "no recipe named 'nope'" in bad.stderr and bad.stdout.splitlines() == \
            (["handler ran"] if first == "fast" else ["thread done", "handler ran", "torn down"])
        usage = subprocess.run([*args, "biuld"], capture_output=True, text=True, cwd=cli_project.root)
        assert usage.returncode == 2 and "No such command" in usage.stderr


def test_the_lazy_polars_loads_once_for_threads_that_race_to_it():
    code = ("import sys, threading\nimport datafactory.cli\nimport polars as pl\n"
            "assert type(sys.modules['polars']).__name__ == 'LazyModule'\nout = []\n"
            "ts = [threading.Thread(target=lambda: out.append(pl.DataFrame({'a': [1, 2]}).height)) for _ in range(8)]\n"
            "[t.start() for t in ts]\n[t.join() for t in ts]\n"
            "print(out, type(sys.modules['polars']).__name__, hasattr(pl, 'no_such_name'))")
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert got.stdout.split("\n")[0] == "[2, 2, 2, 2, 2, 2, 2, 2] module False", got.stderr


def test_plan_list_show_card_diff_gc(cli_project, tmp_path):
    plan = cli(cli_project, "plan", "sft").stdout
    assert "[to build]" in plan and "source qa (files): read" in plan and "steps[0].normalize: run" in plan
    ref = cli(cli_project, "-q", "build", "sft").stdout.strip()
    assert "[built]" in cli(cli_project, "plan", "sft").stdout
    assert ref.split("@")[1] in cli(cli_project, "list").stdout
    shown = cli(cli_project, "show", ref, "--rows", "1").stdout
    assert "steps[1].filter" in shown and "\nqa/q" in shown and "  completion: " in shown  # a row: its id, its texts a line each
    assert json.loads(cli(cli_project, "show", "sft", "--json").stdout)["version"] == ref.split("@")[1]
    assert cli(cli_project, "card", "sft").stdout.startswith("---\nlanguage:")
    cli_project.recipe("down", {"sources": {"up": {"kind": "dataset", "options": {"name": "sft"}}}, "steps": [],
                                "output": {"format": "sft"}})
    cli(cli_project, "-q", "build", "down")
    up = [line for line in cli(cli_project, "show", "down", "--rows", "0").stdout.splitlines() if "│ up " in line]
    assert len(up) == 1 and "dataset" in up[0] and ref in up[0]  # the version it read (the path was "None")
    cli_project.jsonl("qa.jsonl", qa_rows(45))
    ref2 = cli(cli_project, "-q", "build", "sft").stdout.strip()
    d = json.loads(cli(cli_project, "diff", ref, ref2, "--json").stdout)
    assert sum(s["added"] for s in d["splits"].values()) == 5
    assert "added" in cli(cli_project, "diff", ref, ref2).stdout
    up = cli(cli_project, "push", "sft", "--repo", "org/ko", "--dry-run", str(tmp_path / "up")).stdout.split()
    assert sorted(p.rsplit("/", 1)[1] for p in up) == ["LICENSE.md", "README.md", "lengths.png", "manifest.json",
                                                       "test.parquet", "train.parquet"]
    assert str(cli_project.data / "sft" / ref.split("@")[1]) in cli(cli_project, "gc", "--keep", "1").stdout


def test_user_errors_are_one_line_without_traceback(cli_project):
    cli_project.recipe("bad", sft_recipe(steps=[{"fliter": {}}]))
    for args, expected in ((["build", "bad"], "did you mean 'filter'?"),
                           (["build", "sfx"], "no recipe named 'sfx'"),
                           (["show", "nothing"], "no built dataset named 'nothing'"),
                           (["show", "@3f2a"], "'@3f2a' is not NAME or NAME@VERSION"),
                           (["card", "../recipes"], "'../recipes' is not NAME or NAME@VERSION"),
                           (["source", "files", os.devnull], "neither a file nor a folder"),
                           (["llm", "export", "/no/such/folder/x.jsonl"], "cannot be written"),
                           (["--data", os.devnull, "list"], "a file, not a folder"),
                           (["build", "sft", "--source", "qa"], "write it as NAME=PATH"),
                           (["build", "sft", "--source", "qa=/does/not/exist.jsonl"], "no such file or folder")):
        proc = cli(cli_project, *args, check=False)
        assert proc.returncode == 1, args
        assert proc.stderr.startswith("error: ") and expected in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_usage_mistakes_get_usage_not_traceback(cli_project):
    proc = cli(cli_project, "build", check=False)
    assert proc.returncode == 2 and "Missing argument 'name'" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli(cli_project, "biuld", "sft", check=False)
    assert proc.returncode == 2 and "No such command 'biuld'" in proc.stderr


def test_source_override_from_the_command_line(cli_project, tmp_path):
    mine = tmp_path / "mine.jsonl"
    mine.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in qa_rows(12)), "utf-8")
    ref = cli(cli_project, "-q", "build", "sft", "--source", f"qa={mine}").stdout.strip()
    assert json.loads(cli(cli_project, "show", ref, "--json").stdout)["rows"] == 12


# -- no dead ends for a new user ---------------------------------------------------------------------------------
def run(args, cwd, env=None, check=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAFACTORY_")} | (env or {})
    proc = subprocess.run([sys.executable, "-m", "datafactory", *args], capture_output=True, text=True, cwd=cwd, env=env)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_global_options_work_after_the_command(cli_project, tmp_path):
    other = tmp_path / "elsewhere"
    proc = run(["build", "sft", "--data", str(other), "--recipes", str(cli_project.recipes), "-q"], cwd=tmp_path)
    assert proc.stdout.startswith("sft@") and proc.stderr == "" and (other / "sft" / "latest").exists()
    listed = run(["list", f"--data={other}"], cwd=tmp_path).stdout
    assert proc.stdout.strip().split("@")[1] in listed


def test_version_and_bad_option_values(cli_project):
    assert run(["--version"], cwd=cli_project.root).stdout.strip() == f"datafactory {datafactory.__version__}"
    for args in (["show", "sft", "--rows", "-1"], ["gc", "--keep", "-2"]):
        proc = run(args, cwd=cli_project.root, check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and "greater than or equal to 0" in proc.stderr


def test_the_store_is_found_from_anywhere_in_the_project(cli_project, tmp_path_factory):
    """From a sub-folder, the CLI and `datafactory.load` use <root>/data; a script inside the project run from
    elsewhere (a trainer) finds it too; outside any project the error says where it looked."""
    sub = cli_project.root / "notebooks" / "deep"
    sub.mkdir(parents=True)
    ref = run(["-q", "build", "sft"], cwd=sub).stdout.strip()
    assert (cli_project.data / "sft" / ref.split("@")[1]).is_dir()
    code = "import datafactory; print(datafactory.load('sft', split='train').num_rows)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAFACTORY_")}
    here = subprocess.run([sys.executable, "-c", code], cwd=sub, capture_output=True, text=True, env=env)
    assert here.returncode == 0 and int(here.stdout) > 0, here.stderr
    script = cli_project.root / "trainers" / "count.py"
    script.parent.mkdir()
    script.write_text(code, "utf-8")
    away = tmp_path_factory.mktemp("away")  # outside the project
    launched = subprocess.run([sys.executable, str(script)], cwd=away, capture_output=True, text=True, env=env)
    assert launched.returncode == 0 and int(launched.stdout) > 0, launched.stderr
    lost = subprocess.run([sys.executable, "-c", code], cwd=away, capture_output=True, text=True, env=env)
    assert "no datafactory project found" in lost.stderr and str(away.resolve()) in lost.stderr


def test_build_takes_a_recipe_path(cli_project, tmp_path):
    proc = run(["-q", "build", "recipes/sft.yaml"], cwd=cli_project.root)
    assert proc.stdout.startswith("sft@") and (cli_project.data / "sft" / "latest").exists()
    assert run(["plan", str(cli_project.recipes / "sft.yaml")], cwd=tmp_path).stdout.startswith("sft@")
    bad = run(["build", "recipes/nope.yaml"], cwd=cli_project.root, check=False)
    assert bad.returncode == 1 and str(cli_project.root / "recipes" / "nope.yaml") in bad.stderr


def test_missing_relative_source_path_names_the_absolute_path(cli_project):
    cli_project.recipe("sft", sft_recipe(sources={"qa": {"kind": "files", "path": "inputs/gone.jsonl"}}))
    proc = cli(cli_project, "build", "sft", check=False)
    assert proc.returncode == 1 and str(cli_project.root / "inputs" / "gone.jsonl") in proc.stderr


def test_ctrl_c_says_what_is_cached_and_exits_130(cli_project, monkeypatch, capsys):
    from datafactory import cli as cli_module
    from datafactory.engine import Factory

    real = Factory._run_step
    ran = []

    def interrupted_after_two(self, recipe, sp, frame, *args):
        if len(ran) == 2:
            raise KeyboardInterrupt
        ran.append(sp.spec.key)
        return real(self, recipe, sp, frame, *args)

    monkeypatch.setattr(Factory, "_run_step", interrupted_after_two)
    with pytest.raises(SystemExit) as e:
        cli_module.main(["--data", str(cli_project.data), "--recipes", str(cli_project.recipes), "build", "sft"])
    assert e.value.code == 130
    err = capsys.readouterr().err
    assert "interrupted; sft@" in err and ": 1 of 1 sources and 0 of 5 steps are kept in the cache" in err
    assert "run the same command to resume" in err
    assert "Traceback" not in err


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table in /proc")
def test_sigterm_while_workers_parse_stops_them_all_and_keeps_nothing_half_written(project):
    """SIGTERM (`kill`, a scheduler's time limit) killed the program on the spot and left its forkserver and
    workers behind, idle and holding memory; it is now taken as Ctrl-C: the workers are ended, the half-written
    source entry removed, exit 143 with what is kept. (Leaving the pool waited for every queued chunk first.)"""
    import signal
    import time

    from tests.procs import alive_in_group

    inputs = project.root / "inputs" / "many"
    inputs.mkdir()
    for i in range(20_000):  # 20 units of work of 1,000 files
        (inputs / f"{i:05d}.jsonl").write_text(f'{{"qid": "q{i}", "question": "질문 {i}", "answer": "답 {i}", "kind": "daily"}}\n')
    body = sft_recipe()
    body["sources"]["qa"]["path"] = "inputs/many"
    project.recipe("sft", body)
    env = {**os.environ, "DATAFACTORY_WORKERS": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "datafactory", "--data", str(project.data), "--recipes",
                             str(project.recipes), "build", "sft"], stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    assert "reading qa of sft" in proc.stderr.readline()
    time.sleep(0.5)  # the workers start and parse

    def group() -> list[int]:  # the live processes of the build's process group (not zombies)
        return alive_in_group(proc.pid)

    assert len(group()) >= 3  # the program, the forkserver, workers
    proc.send_signal(signal.SIGTERM)
    err = proc.stderr.read()
    assert proc.wait(30) == 143, err
    assert "terminated; it was reading source qa of sft" in err and "Traceback" not in err
    deadline = time.monotonic() + 10
    while group() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert group() == []
    assert not list((project.data / ".cache").rglob("*.tmp"))  # the parts written before the signal are gone


def test_a_full_disk_is_one_line_and_keeps_what_was_built(cli_project, monkeypatch, capsys):
    """No space left while publishing (the plot, a split file) was a traceback; now one line that says what to do.
    The source's cache entry written before is kept."""
    import errno

    from datafactory import cli as cli_module
    from datafactory import publish

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(cli_project.data / "sft" / "x"))

    monkeypatch.setattr(publish, "write_atomic", full)
    with pytest.raises(SystemExit) as e:
        cli_module.main(["--data", str(cli_project.data), "--recipes", str(cli_project.recipes), "build", "sft"])
    err = capsys.readouterr().err
    assert e.value.code == 1 and "Traceback" not in err
    assert f"error: No space left on device ({cli_project.data / 'sft' / 'x'}); free some space or point --data" in err
    assert list((cli_project.data / ".cache" / "sources").glob("*.parquet"))
    try:  # a writer thread's wrapping is looked through; other errors are not worded so
        raise RuntimeError("train.parquet: no space") from OSError(errno.ENOSPC, "No space left on device")
    except RuntimeError as wrapped:
        assert cli_module._disk_error(wrapped).errno == errno.ENOSPC
    assert cli_module._disk_error(OSError(errno.EBADF, "Bad file descriptor")) is None


def test_korean_output_under_a_locale_that_cannot_write_it(tmp_path):
    """Under an ASCII locale (a C locale without Python's coercion, `LANG=en_US` on a cluster) printing a record or
    an error naming a Korean path died with UnicodeEncodeError; output is UTF-8 then, and what the locale could not
    decode from the command line is written back as typed."""
    folder = tmp_path / "한글 폴더"
    folder.mkdir()
    (folder / "qa.jsonl").write_text('{"q": "안녕하세요", "a": "반가워요"}\n', "utf-8")
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    env.pop("PYTHONIOENCODING", None)
    ok = subprocess.run([sys.executable, "-m", "datafactory", "source", "files", str(folder), "--json", "--head", "1"],
                        capture_output=True, env=env)
    assert ok.returncode == 0, ok.stderr.decode("utf-8", "replace")
    assert "안녕하세요" in ok.stdout.decode("utf-8") and b"Traceback" not in ok.stderr
    gone = subprocess.run([sys.executable, "-m", "datafactory", "source", "files", str(tmp_path / "없는 폴더")],
                          capture_output=True, env=env)
    assert gone.returncode == 1 and f"error: {tmp_path / '없는 폴더'}: no such file or folder" in gone.stderr.decode("utf-8")


def test_gc_keeps_pins_and_the_newest_few_and_dry_run_writes_nothing(cli_project):
    refs = []
    for n in (10, 11, 12, 13, 14):
        cli_project.jsonl("qa.jsonl", qa_rows(n))
        refs.append(cli(cli_project, "-q", "build", "sft").stdout.strip())
    assert cli(cli_project, "pin", refs[0], "--note", "models/sft-1").stdout.strip() == refs[0]
    samples = cli_project.data / "samples"
    samples.mkdir()
    (samples / "corpus.json").write_text("{}", "utf-8")
    before = sorted((p, p.stat().st_mtime_ns) for p in cli_project.data.rglob("*"))
    dry = cli(cli_project, "gc", "--dry-run").stdout.split()
    assert sorted((p, p.stat().st_mtime_ns) for p in cli_project.data.rglob("*")) == before  # not even a lock file
    assert str(cli_project.data / "sft" / refs[1].split("@")[1]) in dry
    cli(cli_project, "gc")
    kept = sorted(p.name for p in (cli_project.data / "sft").iterdir() if p.is_dir())
    assert kept == sorted(r.split("@")[1] for r in (refs[0], *refs[2:]))  # the pin and the newest 3
    assert (samples / "corpus.json").exists() and not (samples / ".lock").exists()
    assert "pinned: models/sft-1" in cli(cli_project, "show", refs[0]).stdout
    cli(cli_project, "unpin", refs[0])
    cli(cli_project, "gc")
    assert not (cli_project.data / "sft" / refs[0].split("@")[1]).exists()


def test_trace_relates_a_row_to_the_rows_it_was_made_from_and_made_into():
    """`trace`'s row matching, by id: the row, rows made from it (`respond`: `<id>/<role>/<i>`) and rows it was made
    from (its id up to a "/"); not a row whose id only starts alike (`#10` for `#1`). Vectorised: a test per row in
    Python was 2.5 s of tracing one row of 830k."""
    import polars as pl

    from datafactory.trace import _related

    ids = pl.Series(["daily/a#1", "daily/a#1/teacher/0", "daily", "daily/a", "daily/a#10", "x/daily/a#1",
                     "daily/a#1/teacher/0/judge", "daily/a#1/t"])
    got = {rid: [i for i, hit in zip(ids, _related(ids, rid)) if hit]
           for rid in ("daily/a#1", "daily/a#1/teacher/0", "zz")}
    assert got["daily/a#1"] == ["daily/a#1", "daily/a#1/teacher/0", "daily", "daily/a#1/teacher/0/judge", "daily/a#1/t"]
    assert got["daily/a#1/teacher/0"] == ["daily/a#1", "daily/a#1/teacher/0", "daily", "daily/a#1/teacher/0/judge"]
    assert got["zz"] == []


def test_gc_keep_0_while_a_first_build_parses_leaves_its_work_alone(project):
    """`gc --keep 0` during a first build, while its workers write the source's cache entry (no dataset lock is
    taken yet then): gc removed the build's temporary files and the build crashed. The build now holds a running
    lock for its whole length, and gc sweeps no cache entry while one is held; a killed build's lock is removed."""
    import time

    inputs = project.root / "inputs" / "many"
    inputs.mkdir()
    for i in range(12_000):
        (inputs / f"{i:05d}.jsonl").write_text(f'{{"qid": "q{i}", "question": "질문 {i}", "answer": "답 {i}", "kind": "daily"}}\n')
    body = sft_recipe()
    body["sources"]["qa"]["path"] = "inputs/many"
    project.recipe("sft", body)
    args = [sys.executable, "-m", "datafactory", "--data", str(project.data), "--recipes", str(project.recipes)]
    proc = subprocess.Popen([*args, "build", "sft"], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "DATAFACTORY_WORKERS": "2"})
    assert "reading qa of sft" in proc.stderr.readline()
    for _ in range(500):  # the workers have begun writing the source's entry
        if list((project.data / ".cache" / "sources").glob(".qa.*.tmp/*.parquet")):
            break
        time.sleep(0.01)
    swept = subprocess.run([*args, "gc", "--keep", "0"], capture_output=True, text=True)
    assert swept.returncode == 0, swept.stderr
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and out.strip().startswith("sft@"), err
    assert ".cache" not in swept.stdout + swept.stderr  # nothing of the cache was swept while the build ran
    # the rule itself, deterministically: an entry no version refers to stays while a build runs, goes after
    from datafactory.store import Store

    store = Store(project.data)
    stray = project.data / ".cache" / "steps" / "0123456789abcdef.parquet"
    stray.write_bytes(b"PAR1")
    os.utime(stray, (time.time() - 60, time.time() - 60))
    with store.running():
        assert stray not in store.gc(keep=1) and stray.exists()
    assert stray in store.gc(keep=1) and not stray.exists()
    assert not list((project.data / ".cache" / "running").glob("*.lock"))  # released when the build ended
    (project.data / ".cache" / "running" / "dead.lock").write_text("")  # a killed build's: held by no one
    subprocess.run([*args, "gc"], check=True, capture_output=True)
    assert not (project.data / ".cache" / "running" / "dead.lock").exists()


@pytest.mark.parametrize("command", [["list"], ["llm", "stats"], ["gc"], ["show", "x"], ["labels", "stats"]])
def test_outside_a_project_a_command_says_where_it_looked(command, tmp_path):
    """`list`, `llm stats` and `gc` printed empty results and exited 0 outside any project: now one line naming
    where no project was found and what to do, as `build` says; nothing is created."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAFACTORY_")}
    got = subprocess.run([sys.executable, "-m", "datafactory", *command], cwd=tmp_path, capture_output=True,
                         text=True, env=env)
    assert got.returncode == 1 and "no datafactory project found" in got.stderr and str(tmp_path) in got.stderr
    assert "--data DIR" in got.stderr and "Traceback" not in got.stderr
    assert list(tmp_path.iterdir()) == []


def test_llm_import_names_the_line_that_is_not_an_exported_answer(cli_project, tmp_path):
    shared = tmp_path / "answers.jsonl"
    shared.write_text('\n{"key": "k", "status": "done"}\n', "utf-8")
    proc = cli(cli_project, "llm", "import", str(shared), check=False)
    assert proc.returncode == 1 and "answers.jsonl, line 2: not an exported answer (a line needs key" in proc.stderr
    shared.write_text('{"key": \n', "utf-8")
    proc = cli(cli_project, "llm", "import", str(shared), check=False)
    assert proc.returncode == 1 and "answers.jsonl, line 1: not an exported answer (not valid JSON" in proc.stderr
    assert "Traceback" not in proc.stderr
