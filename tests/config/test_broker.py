"""The embedded broker (config/broker.py): a torn or garbage message file never ends a consumer."""

import logging
import uuid
from pathlib import Path

import pytest
from kombu import Connection


@pytest.fixture
def folders(tmp_path) -> dict[str, Path]:
    names = ("queue", "processed", "control", "bad")
    paths = {name: tmp_path / name for name in names}
    for path in paths.values():
        path.mkdir()
    return paths


@pytest.fixture
def connection(folders):
    options = {
        "data_folder_in": str(folders["queue"]),
        "data_folder_out": str(folders["queue"]),
        "processed_folder": str(folders["processed"]),
        "control_folder": str(folders["control"]),
        "bad_folder": str(folders["bad"]),
        "store_processed": False,
        "polling_interval": 0.05,
    }
    with Connection(
        "filesystem://localhost/", transport="config.broker:Transport", transport_options=options
    ) as conn:
        yield conn


def test_filesystem_urls_use_this_transport():
    from config.broker import Transport

    assert Connection("filesystem://localhost/").transport_cls == "filesystem"
    assert isinstance(Connection("filesystem://localhost/").transport, Transport)


def test_a_published_message_appears_only_complete(connection, folders):
    name = f"jobs{uuid.uuid4().hex[:8]}"
    queue = connection.SimpleQueue(name)

    queue.put({"task": "x"})

    files = [path.name for path in folders["queue"].iterdir()]
    assert len(files) == 1 and files[0].endswith(f".{name}.msg")  # no partial file left
    assert queue.get(timeout=5).payload == {"task": "x"}
    queue.close()


@pytest.mark.parametrize("content", [b"", b"{not json", b"\xff\xfe\x00"])
def test_an_undecodable_message_is_set_aside_and_the_next_one_delivered(
    connection, folders, content, caplog
):
    name = f"jobs{uuid.uuid4().hex[:8]}"  # kombu remembers declared queues per process
    queue = connection.SimpleQueue(name)
    # kombu reads files in *string* order of their names, which start with
    # monotonic milliseconds: "0_" sorts before every real name, while "1_"
    # sorts after "117470_" (it did on a machine up for under 20 minutes).
    torn = folders["queue"] / f"0_00000000-0000-0000-0000-000000000000.{name}.msg"
    torn.write_bytes(content)
    queue.put({"task": "after"})

    with caplog.at_level(logging.ERROR, logger="config.broker"):
        message = queue.get(timeout=5)

    assert message.payload == {"task": "after"}
    assert [path.name for path in folders["bad"].iterdir()] == [torn.name]
    assert (folders["bad"] / torn.name).read_bytes() == content
    assert "cannot be decoded, moved aside" in caplog.text
    queue.close()
