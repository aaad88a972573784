"""The formats `thisdb import --from` reads (cli/formats.py), as pure functions of the bytes:
every record turned into the shape of an export's line, numbered, --skip, and each kind of
malformed input named by its record. No server."""

import base64
import io
import json

import pytest
from thisdb.cli import formats
from thisdb.cli.formats import EXPIRED, BadRecord, json_array, records


def _records(data: bytes, source: str, skip: int = 0) -> list:
    return list(records(io.BytesIO(data), source, skip))


# Reading a JSON array one entry at a time


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 1 << 16])
def test_a_json_array_is_read_whole_whatever_the_chunks(size):
    entries = [
        {"key": "a", "value": "x" * 100},
        123456789,
        -1.5e10,
        "é日本 ✓ \U0001f600",
        [1, [2, [3]]],
        None,
        True,
        {"nested": {"deep": ["]", "[", ",", '"']}},
    ]
    data = b"\xef\xbb\xbf \n" + json.dumps(entries, ensure_ascii=False).encode() + b"\n "
    chunks = [data[i : i + size] for i in range(0, len(data), size)]
    assert list(json_array(chunks)) == entries


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"key": "a"}', "record 1: expected a JSON array"),
        (b"", "record 1: the file ends before its JSON array does"),
        (b'[{"key": "a"}, {"key": ', "record 2: not JSON"),
        (b'[{"key": "a"} {"key": "b"}]', "record 2: expected , or ] between entries"),
        (b'[{"key": "a"}, ]', "record 2: not JSON"),
        (b"[1, 2] [3]", "record 2: something follows the JSON array"),
        (b"[1, 2", "record 3: the file ends before its JSON array does"),
        (b'["\xff"]', "record 1: not UTF-8 text"),
    ],
)
def test_a_malformed_array_names_the_entry(data, message):
    with pytest.raises(BadRecord, match=message):
        list(json_array([data]))


def test_empty_arrays():
    assert list(json_array([b"[]"])) == []
    assert list(json_array([b" [ \n ] "])) == []


# NDJSON, the default


def test_ndjson_lines_are_numbered_blank_ones_included():
    data = b'{"key": "a", "value": "1"}\n\n  \n{"key": "b", "value": "2", "ttl": 5}\n'
    assert _records(data, "ndjson") == [
        (1, {"key": "a", "value": "1"}),
        (2, None),
        (3, None),
        (4, {"key": "b", "value": "2", "ttl": 5}),
    ]


def test_skip_passes_over_lines_without_reading_them():
    data = b"not json\n[1]\n" + b'{"key": "c", "value": "3"}'
    assert _records(data, "ndjson", skip=2) == [(3, {"key": "c", "value": "3"})]
    with pytest.raises(BadRecord, match="line 2: expected"):
        _records(data, "ndjson", skip=1)
    with pytest.raises(BadRecord, match="line 1: not JSON") as bad:
        _records(data, "ndjson")
    assert bad.value.number == 1


# Workers KV


def test_workers_kv_entries():
    now = 1_000_000.0
    assert formats.workers_kv({"key": "k", "value": "v"}, now) == {"key": "k", "value": "v"}
    assert formats.workers_kv({"key": "k", "value": "/w==", "base64": True}, now) == {
        "key": "k",
        "value": "/w==",
        "encoding": "base64",
    }
    assert (
        formats.workers_kv({"key": "k", "value": "v", "base64": False, "expiration_ttl": 60})["ttl"]
        == 60
    )
    # "expiration" is a Unix time: what is left of it, rounded down; expiration_ttl wins.
    assert (
        formats.workers_kv({"key": "k", "value": "v", "expiration": now + 90.7}, now)["ttl"] == 90
    )
    both = {"key": "k", "value": "v", "expiration": now + 90, "expiration_ttl": 300}
    assert formats.workers_kv(both, now)["ttl"] == 300
    gone = formats.workers_kv({"key": "k", "value": "v", "expiration": now - 5}, now)
    assert gone[EXPIRED] is True
    assert formats.workers_kv({"key": "k", "value": "v", "metadata": {"a": 1}}, now) == {
        "key": "k",
        "value": "v",
    }


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (["k", "v"], 'expected {"key": ..., "value": ...}'),
        ({"key": "k"}, '"key" and "value" as strings'),
        ({"key": 1, "value": "v"}, '"key" and "value" as strings'),
        ({"key": "k", "value": "v", "base64": "yes"}, '"base64" must be true or false'),
        ({"key": "k", "value": "v", "expiration_ttl": "60"}, "must be a number of seconds"),
        ({"key": "k", "value": "v", "expiration_ttl": -1}, "cannot be negative"),
    ],
)
def test_workers_kv_refuses(entry, message):
    with pytest.raises(ValueError, match=message):
        formats.workers_kv(entry)


def test_a_workers_kv_file_is_numbered_by_entry():
    data = json.dumps(
        [{"key": "a", "value": "1"}, {"key": "b", "value": "Ag==", "base64": True}, {"key": 3}]
    ).encode()
    assert next(records(io.BytesIO(data), "workers-kv", skip=1)) == (
        2,
        {"key": "b", "value": "Ag==", "encoding": "base64"},
    )
    with pytest.raises(BadRecord, match='record 3: expected "key" and "value"') as bad:
        _records(data, "workers-kv")
    assert bad.value.number == 3


# Consul


def test_consul_values_are_text_when_they_are_utf8_else_base64():
    text = base64.b64encode("é ✓".encode()).decode()
    binary = base64.b64encode(b"\xff\x00").decode()
    data = json.dumps(
        [
            {"key": "app/name", "flags": 0, "value": text},
            {"key": "app/blob", "flags": 42, "value": binary},
            {"key": "app/", "flags": 0, "value": None},
            {"key": "app/empty", "flags": 0, "value": ""},
        ]
    ).encode()
    assert _records(data, "consul") == [
        (1, {"key": "app/name", "value": "é ✓"}),
        (2, {"key": "app/blob", "value": binary, "encoding": "base64"}),
        (3, {"key": "app/", "value": ""}),
        (4, {"key": "app/empty", "value": ""}),
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"flags": 0, "value": ""}, "expected"),
        ({"key": "k", "value": "not base64!"}, "is not base64"),
        ({"key": "k", "value": 5}, "must be a string of base64"),
    ],
)
def test_consul_refuses(entry, message):
    with pytest.raises(ValueError, match=message):
        formats.consul(entry)


# kvdb.io listings


def test_kvdb_json_pairs():
    data = b'  [["a", "1"], ["b=c", ""], ["\xc3\xa9", "\xe2\x9c\x93"]]'
    assert _records(data, "kvdb") == [
        (1, {"key": "a", "value": "1"}),
        (2, {"key": "b=c", "value": ""}),
        (3, {"key": "é", "value": "✓"}),
    ]
    with pytest.raises(BadRecord, match="record 2: expected a pair"):
        _records(b'[["a", "1"], ["b"]]', "kvdb")
    with pytest.raises(BadRecord, match="record 1: expected a pair"):
        _records(b'[["a", 1]]', "kvdb")


def test_kvdb_text_lines_split_at_the_first_equals_sign():
    data = b"\n a=1\nb=x=y\r\nc=\n\nd=last"
    assert _records(data, "kvdb") == [
        (1, None),
        (2, {"key": " a", "value": "1"}),
        (3, {"key": "b", "value": "x=y"}),
        (4, {"key": "c", "value": ""}),
        (5, None),
        (6, {"key": "d", "value": "last"}),
    ]
    assert _records(data, "kvdb", skip=3) == _records(data, "kvdb")[3:]
    with pytest.raises(BadRecord, match="line 2: expected key=value"):
        _records(b"a=1\nno equals sign\n", "kvdb")
    with pytest.raises(BadRecord, match="line 1: not UTF-8"):
        _records(b"a=\xff\n", "kvdb")
    assert _records(b"\xef\xbb\xbfa=1\n", "kvdb") == [(1, {"key": "a", "value": "1"})]


def test_unit_names():
    assert formats.unit("ndjson") == "line"
    assert {formats.unit(name) for name in ("workers-kv", "consul", "kvdb")} == {"record"}
