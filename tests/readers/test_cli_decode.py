"""``tagtrail decode``: hex in, one JSON record per line out, exit codes."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner

from tagtrail.readers.cli import decode_command

TAG = "A0 13 01 89 04 30 00 E2 00 30 16 66 13 01 21 15 50 74 EF 45 BF"


def run(*args: str) -> tuple[int, list[dict[str, Any]], str]:
    result = CliRunner().invoke(decode_command, list(args))
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result.exit_code, lines, result.stderr


def test_checked_tag_frame_spaced() -> None:
    code, records, _ = run("--protocol", "r2000", TAG)
    assert code == 0
    assert records == [
        {
            "type": "tag",
            "address": 1,
            "command": "0x89",
            "antenna": 1,
            "freq_index": 1,
            "pc": "3000",
            "epc": "E200301666130121155074EF",
            "rssi_raw": 69,
            "rssi_dbm": -60,
        }
    ]


def test_compact_json_one_object_per_line() -> None:
    result = CliRunner().invoke(decode_command, ["A0050172 0109DE", "A0 04 01 74 10 D7"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines == [
        '{"type":"reply","address":1,"command":"0x72","data":"0109","firmware":"1.9"}',
        '{"type":"result","address":1,"command":"0x74","code":"0x10","name":"command_success",'
        '"ok":true}',
    ]


def test_prefixes_colons_and_split_arguments() -> None:
    # the same firmware reply written four ways, then split mid-frame over two arguments
    code, records, _ = run(
        "0xA0 0x05 0x01 0x72 0x01 0x09 0xDE",
        "a0:05:01:72:01:09:de",
        "A0,05,01,72,01,09,DE",
        "A005017201",
        "09DE",
    )
    assert code == 0
    assert [r["firmware"] for r in records] == ["1.9", "1.9", "1.9", "1.9"]


def test_garbage_and_bad_frames_exit_1() -> None:
    bad = TAG[:-2] + "BE"
    code, records, _ = run("FF 00", TAG, bad, "A0 13 01")
    assert code == 1
    assert [r["type"] for r in records] == ["invalid", "tag", "invalid", "invalid"]
    assert records[0] == {"type": "invalid", "reason": "garbage", "data": "FF00"}
    assert records[2]["reason"] == "checksum"
    assert records[2]["data"] == bad.replace(" ", "")
    assert records[3] == {"type": "invalid", "reason": "truncated", "data": "A01301"}


def test_non_hex_input_exits_2_without_traceback() -> None:
    for args in (["A0 zz 01"], ["A0 0"], ["hello"], ["0x"], [""]):
        result = CliRunner().invoke(decode_command, args)
        assert result.exit_code == 2, args
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "Traceback" not in result.output
        assert "HEX" in result.stderr
        assert result.stdout == ""


def test_missing_argument_and_unknown_protocol_exit_2() -> None:
    assert CliRunner().invoke(decode_command, []).exit_code == 2
    result = CliRunner().invoke(decode_command, ["--protocol", "nope", TAG])
    assert result.exit_code == 2
