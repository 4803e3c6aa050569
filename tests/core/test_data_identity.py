"""A run's identity comes from content, not path spelling: `--data-dir data/pope` and its absolute path
are one run (config hash, default folder, data version), the toy files through `--data toy` or
`--data-dir` get the same data version, and other bytes under the same counts get another."""

import json

import pytest

from evalkit.models.base import BackendOptions
from evalkit.models.openai_backend import OpenAIBackend
from evalkit.runner import evaluate, load_tasks
from evalkit.tasks.amber import toy as amber_toy
from evalkit.tasks.llava_bench import toy as llava_bench_toy
from evalkit.tasks.mmbench import toy as mmbench_toy
from evalkit.tasks.mmhal import toy as mmhal_toy
from evalkit.tasks.mmvet import toy as mmvet_toy
from evalkit.tasks.objhal import toy as objhal_toy
from evalkit.tasks.pope import toy as pope_data
from evalkit.tasks.pope.toy import default_toy_dir, write_pope
from evalkit.util.datafiles import content_version, data_identity

#: where `--data toy` writes each task's files (seed 0), and the options it implies (passed both ways)
TOY_DIRS = {
    "pope": lambda: pope_data.default_toy_dir(0, 100),
    "mmvet": lambda: mmvet_toy.default_toy_dir(0),
    "llava_bench": lambda: llava_bench_toy.default_toy_dir(0),
    "mmhal": lambda: mmhal_toy.default_toy_dir(0),
    "amber": lambda: amber_toy.default_toy_dir(0),
    "objhal": lambda: objhal_toy.default_toy_dir(0),
    "mmbench": lambda: mmbench_toy.default_toy_dir(0),
}
TOY_OPTIONS = {
    "amber": {"amber.answers": "normalize"},
    "mmbench": {"mmbench.matcher": "none", "mmbench.file": mmbench_toy.TOY_FILE},
    "objhal": {"objhal.extraction": "words"},
}


def _run(server, root, **data):
    return evaluate(
        OpenAIBackend("m", BackendOptions(base_url=server.base_url, max_retries=1)),
        "pope",
        limit=6,
        results_root=root,
        progress=False,
        **data,
    )


def test_relative_and_absolute_data_dir_are_one_run(tmp_path, monkeypatch, openai_server):
    data = tmp_path / "work" / "data" / "pope"
    write_pope(data, seed=0, n_images=4)
    monkeypatch.chdir(tmp_path / "work")
    server = openai_server(responder=lambda body: "Yes")
    first = _run(server, tmp_path / "results", data_dir="data/pope")
    calls = server.count
    second = _run(server, tmp_path / "results", data_dir=str(data.resolve()) + "/")
    third = _run(server, tmp_path / "results", data_dir="./data/../data/pope")
    assert server.count == calls == 6  # the later spellings resumed the finished run: no call
    assert first.run_dir == second.run_dir == third.run_dir
    assert second.resumed and third.resumed
    headers = [r.header for r in (first, second, third)]
    assert len({h["config_hash"] for h in headers}) == 1
    versions = {h["tasks"]["pope"]["data"]["version"] for h in headers}
    assert len(versions) == 1 and versions.pop().startswith("toy world (seed 0, 4 images) #")
    stored = json.loads((third.run_dir / "run.json").read_text())
    assert stored["command"]["data_dir"] == "./data/../data/pope"  # the spelling is kept for people


def test_a_moved_data_folder_resumes_without_asking_again(tmp_path, openai_server):
    """The data's content is the run's identity, and images enter the prompt hash by file name: moving
    the benchmark folder between two invocations re-asks nothing."""
    import shutil

    data = tmp_path / "a" / "pope"
    write_pope(data, seed=0, n_images=4)
    server = openai_server(responder=lambda body: "Yes")
    first = _run(server, tmp_path / "results", data_dir=data)
    moved = tmp_path / "b" / "elsewhere"
    moved.parent.mkdir()
    shutil.move(data, moved)
    second = _run(server, tmp_path / "results", data_dir=moved)
    assert server.count == 6
    assert second.run_dir == first.run_dir and second.resumed
    values = {k: m["value"] for k, m in first.metrics["pope"]["metrics"].items()}
    assert {k: m["value"] for k, m in second.metrics["pope"]["metrics"].items()} == values


def test_toy_and_the_same_files_through_data_dir_are_one_run(tmp_path, openai_server):
    folder = default_toy_dir(0, 100)  # where --data toy writes them (the test's own cache)
    server = openai_server(responder=lambda body: "Yes")
    toy = _run(server, tmp_path / "results", data="toy")
    via_dir = _run(server, tmp_path / "results", data_dir=folder)
    assert server.count == 6
    assert toy.run_dir == via_dir.run_dir and via_dir.resumed
    assert (
        toy.header["tasks"]["pope"]["data"]["version"] == via_dir.header["tasks"]["pope"]["data"]["version"]
    )


@pytest.mark.parametrize("name", sorted(TOY_DIRS))
def test_every_task_labels_its_toy_files_the_same_either_way(name):
    _, toy = load_tasks(name, data="toy", task_options=TOY_OPTIONS.get(name))
    folder = TOY_DIRS[name]()
    _, via_dir = load_tasks(name, data_dir=folder, task_options=TOY_OPTIONS.get(name))
    a, b = toy[name].info, via_dir[name].info
    assert a["version"] == b["version"] and a["version"].startswith("toy world (seed 0")
    assert " #" in a["version"]  # a hash of the files' checksums follows the label
    assert data_identity(a) == data_identity(b)
    assert not any(isinstance(v, str) and str(folder) in v for v in data_identity(a).values())


@pytest.mark.parametrize("limit", [3, 30])
def test_the_data_version_is_of_the_whole_files_not_of_the_limit(limit):
    for name in ("pope", "objhal", "mmhal", "mmvet", "mt_bench"):
        _, full = load_tasks(name, data="toy", task_options=TOY_OPTIONS.get(name))
        _, part = load_tasks(name, data="toy", limit=limit, task_options=TOY_OPTIONS.get(name))
        assert part[name].info["version"] == full[name].info["version"], name


def test_other_bytes_with_the_same_counts_are_another_data_version(tmp_path):
    data = write_pope(tmp_path / "pope", seed=0, n_images=4)
    (data / "toy_meta.json").unlink()  # no longer the toy world: labelled by its counts
    _, before = load_tasks("pope", data_dir=data)
    path = data / "coco_pope_random.json"
    lines = path.read_text().splitlines()
    row = json.loads(lines[0])
    row["label"] = "no" if row["label"] == "yes" else "yes"
    path.write_text("\n".join([json.dumps(row), *lines[1:]]) + "\n")
    _, after = load_tasks("pope", data_dir=data)
    v1, v2 = before["pope"].info["version"], after["pope"].info["version"]
    assert v1.split(" #")[0] == v2.split(" #")[0] == "unknown (24/24/24 questions)"
    assert v1 != v2


def test_content_version_hashes_checksums_only_outside_paths_and_inputs():
    sha = "a" * 64
    info = {"version": "x", "files": {"q.json": sha}, "source": "/data", "image_dir": "/img"}
    moved = {**info, "source": "/elsewhere", "image_dir": "/other", "inputs": {"answers.json": "b" * 64}}
    assert content_version(info)["version"] == content_version(moved)["version"]
    changed = {**info, "files": {"q.json": "c" * 64}}
    assert content_version(changed)["version"] != content_version(info)["version"]
    assert content_version({"version": "x"}) == {"version": "x"}  # nothing read: nothing to hash
    again = content_version(info)
    assert content_version(again) == again  # applied once
