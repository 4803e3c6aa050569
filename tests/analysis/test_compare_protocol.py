"""`evalkit compare` warns when the two runs were generated under different protocols (`--prompt-style`,
`--image-pad`, `--sampling`), read from each run.json's model fingerprint."""

from __future__ import annotations

from support.runs import pope_items, pope_rows, write_run

from evalkit.analysis.compare import compare_runs
from evalkit.store import RunStore


def _with_fingerprint(path, **entries):
    store = RunStore(path)
    header = store.read_header()
    header["model"]["fingerprint"].update(entries)
    store.write_header(header)
    return path


def _protocol_warnings(result) -> list[str]:
    return [w for w in result.warnings if "different protocols" in w]


def test_runs_under_different_protocols_are_compared_with_a_warning(tmp_path):
    items = pope_items(300)
    base = write_run(tmp_path / "base", "pope", pope_rows(items))
    new = _with_fingerprint(
        write_run(tmp_path / "new", "pope", pope_rows(items)),
        protocol={"prompt_style": "llava_v1.5", "image_pad": "square"},
    )
    [warning] = _protocol_warnings(compare_runs(base, new))
    assert "base chat-template/none/evalkit" in warning
    assert "new llava_v1.5/square/evalkit" in warning


def test_sampling_alone_differing_is_named(tmp_path):
    items = pope_items(300)
    base = write_run(tmp_path / "base", "pope", pope_rows(items))
    new = _with_fingerprint(
        write_run(tmp_path / "new", "pope", pope_rows(items)),
        sampling={"style": "fastchat", "top_k": 50, "top_p": 1.0},
    )
    [warning] = _protocol_warnings(compare_runs(base, new))
    assert "new chat-template/none/fastchat" in warning


def test_runs_under_the_same_protocol_get_no_protocol_warning(tmp_path):
    items = pope_items(300)
    same = {"protocol": {"prompt_style": "llava_v1", "image_pad": "none"}}
    base = _with_fingerprint(write_run(tmp_path / "base", "pope", pope_rows(items)), **same)
    new = _with_fingerprint(write_run(tmp_path / "new", "pope", pope_rows(items)), **same)
    assert _protocol_warnings(compare_runs(base, new)) == []
    plain = [write_run(tmp_path / n, "pope", pope_rows(items)) for n in ("b2", "n2")]
    assert _protocol_warnings(compare_runs(*plain)) == []
