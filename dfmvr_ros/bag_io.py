"""rosbag2 reading and writing with the ``rosbags`` library: no ROS installation needed.

Reading (:class:`BagReader`)
    A bag directory (``metadata.yaml`` + storage files), or a single ``.db3``/``.mcap`` file (its directory is
    opened when it holds a ``metadata.yaml``). Metadata versions 5 (Humble) to 9 (Jazzy and later) and both
    storage plugins, sqlite3 and mcap, are read; zstd-compressed bags too (rosbags decompresses them).
    Messages come back deserialized, in receive-time order, as :class:`BagMessage`. Each message type is
    deserialized with the definition stored in the bag when there is one (rosbags-written bags and bags
    recorded since Iron store them), else with the ROS 2 Humble standard definitions (``default_distro``).
    A corrupt or truncated record raises :class:`BagError` when it is reached: the messages yielded before
    stay valid, so a replay keeps what it processed.

Writing (:class:`BagWriter`)
    The bag is written into ``<path>.partial/`` and moved to ``path`` only when the writer closes without an
    exception, so an interrupted run never leaves a half bag at ``path`` (an aborted one leaves nothing). The
    message definitions are stored in the bag (sqlite3 ``message_definitions`` table / mcap schemas), messages
    are serialized as CDR with the target distro's typestore, and topics can be marked latched (offered QoS
    durability TRANSIENT_LOCAL, so ``ros2 bag play`` republishes them transient-local, e.g. the mesh topology).

Metadata version by target distro:

* ``humble`` → **version 5**, the version Humble's rosbag2 itself writes (and the newest it documents).
  rosbags' writer only writes versions 8 and 9, so dfmvr writes version 8 (whose QoS serialization, integer
  enums in a YAML string, is Humble's) and rewrites ``metadata.yaml`` (and the sqlite3 ``metadata`` table)
  as version 5 with exactly Humble's keys (no ``custom_data``, ``type_description_hash`` or ``ros_distro``).
  The copy an mcap file embeds stays at version 8: rosbag2 reads ``metadata.yaml``.
* ``jazzy`` → **version 9** (Jazzy's rosbag2 writes 9: QoS enums as strings), as rosbags writes it.

Not verified against a real ``ros2 bag play`` here (ROS 2 is not installable on this project's machines):
the Humble layout is copied from a bag recorded by Humble (``shared/data/rosbag2_ros_humble_images``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from dfmvr_core.atomic_io import write_text_atomic
from dfmvr_core.errors import ConfigError, DfmvrError
from dfmvr_ros.message_types import rosbags_types

__all__ = [
    "METADATA_VERSION_BY_DISTRO",
    "STORAGE_PLUGINS",
    "BagError",
    "BagMessage",
    "BagReader",
    "BagWriter",
]

STORAGE_PLUGINS = ("sqlite3", "mcap")
"""rosbag2 storage plugins dfmvr reads and writes."""

METADATA_VERSION_BY_DISTRO = {"humble": 5, "jazzy": 9}
"""``metadata.yaml`` version :class:`BagWriter` writes for each target distro (see the module docstring)."""

_ROSBAGS_WRITER_VERSION = {"humble": 8, "jazzy": 9}
_STORAGE_SUFFIX = {".db3": "sqlite3", ".mcap": "mcap"}


class BagError(DfmvrError):
    """A rosbag2 bag is missing, unreadable, corrupt, or lacks what the caller needs; the message names the
    bag path and what is wrong."""


@dataclasses.dataclass(frozen=True)
class BagMessage:
    """One deserialized bag message.

    Attributes:
        topic: topic name.
        msgtype: full type name, e.g. ``"sensor_msgs/msg/Image"``.
        timestamp_ns: receive time recorded by the bag, integer ns (the header stamp is inside ``msg``).
        msg: the message, a ``rosbags`` dataclass.
    """

    topic: str
    msgtype: str
    timestamp_ns: int
    msg: Any


def _read_metadata(path: Path) -> dict[str, Any]:
    """``rosbag2_bagfile_information`` of ``metadata.yaml``, checked for the fields dfmvr relies on."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BagError(f"{path}: cannot read bag metadata ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BagError(f"{path}: bag metadata is not valid YAML ({exc})") from None
    info = data.get("rosbag2_bagfile_information") if isinstance(data, dict) else None
    if not isinstance(info, dict):
        raise BagError(f"{path}: not rosbag2 metadata (expected a 'rosbag2_bagfile_information' mapping)")
    version = info.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= 9:
        raise BagError(f"{path}: unsupported metadata version {version!r}; dfmvr reads rosbag2 versions up to 9")
    storage = info.get("storage_identifier")
    if storage not in STORAGE_PLUGINS:
        raise BagError(f"{path}: storage {storage!r} is not supported; expected one of {', '.join(STORAGE_PLUGINS)}")
    return info


def _parse_stored_definitions(connections: Sequence[Any]) -> Any:
    """A typestore holding the message definitions stored in the bag (``None`` when there are none)."""
    from rosbags.interfaces import MessageDefinitionFormat
    from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

    store = None
    done: set[str] = set()
    for conn in connections:
        fmt = conn.msgdef.format
        if fmt == MessageDefinitionFormat.NONE or conn.msgtype in done:
            continue
        data = conn.msgdef.data
        if fmt == MessageDefinitionFormat.MSG:
            types = get_types_from_msg(data, conn.msgtype)
        else:
            sep = "=" * 80 + "\n"
            types = {}
            if data.startswith(f"{sep}IDL: "):
                for chunk in data.split(sep)[1:]:
                    types.update(get_types_from_idl(chunk.split("\n", 1)[1]))
            else:
                types.update(get_types_from_idl(data))
        if store is None:
            store = get_typestore(Stores.EMPTY)
        store.register(types)
        done.add(conn.msgtype)
    return store


class BagReader:
    """Read a rosbag2 bag (context manager; also closed by :meth:`close`).

    Attributes:
        path: the bag directory (or the storage file opened alone).
        topics: ``{topic: msgtype}``.
        topic_counts: ``{topic: number of messages}``.
        latched_topics: topics whose recorded offered QoS is TRANSIENT_LOCAL.
        message_count: messages in the bag.
        start_ns, end_ns: receive times of the first and last message (ns), ``None`` for an empty bag.
        storage: ``"sqlite3"`` or ``"mcap"``.
        metadata_version: ``metadata.yaml`` version (5 Humble … 9), ``None`` for a storage file opened alone.

    Raises (from the constructor):
        BagError: a missing path, no ``metadata.yaml``, unreadable/garbage metadata, missing or corrupt storage
            files, or unparsable stored message definitions.
        ConfigError: an unknown ``default_distro``.
    """

    def __init__(self, path: str | os.PathLike[str], *, default_distro: str = "humble") -> None:
        from rosbags.rosbag2 import Reader

        path = Path(path)
        default_types = rosbags_types(default_distro)
        if not path.exists():
            raise BagError(f"{path}: bag not found")
        if path.is_file():
            if path.suffix not in _STORAGE_SUFFIX:
                raise BagError(f"{path}: not a rosbag2 bag (expected a directory, a .db3 or a .mcap file)")
            if (path.parent / "metadata.yaml").is_file():
                path = path.parent
        self.path = path
        if path.is_dir():
            metadata_path = path / "metadata.yaml"
            if not metadata_path.is_file():
                listing = ", ".join(sorted(p.name for p in path.iterdir())[:8]) or "empty"
                raise BagError(f"{path}: no metadata.yaml, not a rosbag2 bag directory (contents: {listing})")
            info = _read_metadata(metadata_path)
            self.metadata_version: int | None = int(info["version"])
            self.storage = str(info["storage_identifier"])
        else:
            self.metadata_version = None
            self.storage = _STORAGE_SUFFIX[path.suffix]
        try:
            self._reader = Reader(path)
            self._reader.open()
        except Exception as exc:  # rosbags raises ReaderError, apsw/sqlite errors, OSError, KeyError, ...
            raise BagError(f"{path}: cannot open bag ({type(exc).__name__}: {exc})") from exc
        try:
            self._init_from_reader(default_types.typestore)
        except BaseException:
            self._reader.close()
            raise
        self._open = True

    def _init_from_reader(self, default_store: Any) -> None:
        from rosbags.interfaces import QosDurability

        reader = self._reader
        self._connections = list(reader.connections)
        self.topics: dict[str, str] = {}
        self.topic_counts: dict[str, int] = {}
        durabilities: dict[str, set] = {}
        for conn in self._connections:
            self.topics.setdefault(conn.topic, conn.msgtype)
            self.topic_counts[conn.topic] = self.topic_counts.get(conn.topic, 0) + int(conn.msgcount)
            qos = getattr(conn.ext, "offered_qos_profiles", []) or []
            durabilities.setdefault(conn.topic, set()).update(q.durability for q in qos)
        self.latched_topics = frozenset(t for t, d in durabilities.items() if d == {QosDurability.TRANSIENT_LOCAL})
        self.message_count = int(reader.message_count)
        self.start_ns: int | None = int(reader.start_time) if self.message_count else None
        self.end_ns: int | None = int(reader.end_time) - 1 if self.message_count else None
        try:
            stored = _parse_stored_definitions(self._connections)
        except Exception as exc:
            raise BagError(f"{self.path}: the message definitions stored in the bag cannot be used ({exc})") from exc
        self._stores: dict[str, Any] = {}
        for conn in self._connections:
            if stored is not None and conn.msgtype in stored.fielddefs:
                self._stores[conn.msgtype] = stored
            elif conn.msgtype in default_store.fielddefs:
                self._stores[conn.msgtype] = default_store

    def __enter__(self) -> BagReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the storage files (idempotent)."""
        if getattr(self, "_open", False):
            self._open = False
            self._reader.close()

    def _listing(self) -> str:
        return ", ".join(f"{t} ({m}, {self.topic_counts.get(t, 0)} msgs)" for t, m in sorted(self.topics.items())) or (
            "no topics"
        )

    def require_topics(self, topics: Mapping[str, Sequence[str]]) -> None:
        """Check that every ``topic`` exists with one of its accepted message types.

        Raises:
            BagError: listing each missing topic / wrong type and what the bag has.
        """
        problems = []
        for topic, accepted in topics.items():
            accepted = [accepted] if isinstance(accepted, str) else list(accepted)
            if topic not in self.topics:
                problems.append(f"topic {topic!r} is missing")
            elif self.topics[topic] not in accepted:
                problems.append(f"topic {topic!r} has type {self.topics[topic]}, expected {' or '.join(accepted)}")
        if problems:
            raise BagError(f"{self.path}: {'; '.join(problems)}. The bag has: {self._listing()}")

    def messages(self, topics: Sequence[str] | None = None) -> Iterator[BagMessage]:
        """Deserialized messages of ``topics`` (all when ``None``) in receive-time order (the files of a split
        bag are read one after the other, as rosbag2 splits them in time).

        Raises:
            BagError: a closed reader, an unknown topic or a type without definition (raised by this call), or
                a corrupt record (raised by the iterator when it is reached, naming the topic, the time and how
                many messages came before).
        """
        if not getattr(self, "_open", False):
            raise BagError(f"{self.path}: the bag reader is closed")
        if topics is None:
            connections = self._connections
        else:
            wanted = [topics] if isinstance(topics, str) else list(topics)
            unknown = [t for t in wanted if t not in self.topics]
            if unknown:
                raise BagError(f"{self.path}: topic(s) {unknown} not in the bag. The bag has: {self._listing()}")
            connections = [c for c in self._connections if c.topic in set(wanted)]
        undefined = sorted({c.msgtype for c in connections if c.msgtype not in self._stores})
        if undefined:
            raise BagError(
                f"{self.path}: no message definition for {undefined} (not stored in the bag and not a standard "
                "ROS 2 type); record with a newer rosbag2 or use a bag that stores definitions"
            )
        return self._iterate(connections) if connections else iter(())

    def _iterate(self, connections: Sequence[Any]) -> Iterator[BagMessage]:
        raw_messages = self._reader.messages(connections=connections)
        count, last_ns = 0, None
        while True:
            try:
                conn, timestamp, raw = next(raw_messages)
            except StopIteration:
                return
            except Exception as exc:
                where = f"after {count} message(s)" + (f", last at {last_ns} ns" if last_ns is not None else "")
                raise BagError(f"{self.path}: bag storage is corrupt or truncated {where} ({exc})") from exc
            try:
                msg = self._stores[conn.msgtype].deserialize_cdr(raw, conn.msgtype)
            except Exception as exc:
                raise BagError(
                    f"{self.path}: message {count + 1} on {conn.topic} at {timestamp} ns is corrupt: cannot "
                    f"deserialize {len(raw)} bytes as {conn.msgtype} ({exc})"
                ) from exc
            count, last_ns = count + 1, int(timestamp)
            yield BagMessage(conn.topic, conn.msgtype, int(timestamp), msg)


def _qos_profile(latched: bool) -> Any:
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    unset = QosTime(0, 0)  # RMW_DURATION_UNSPECIFIED: the player keeps its defaults
    return Qos(
        QosHistory.KEEP_LAST,
        1 if latched else 10,
        QosReliability.RELIABLE,
        QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE,
        unset,
        unset,
        QosLiveliness.AUTOMATIC,
        unset,
        False,
    )


def _metadata_v5(info: Mapping[str, Any]) -> dict[str, Any]:
    """rosbags' version-8 metadata → the version-5 layout Humble's rosbag2 writes (same keys, same order)."""
    return {
        "version": 5,
        "storage_identifier": info["storage_identifier"],
        "duration": {"nanoseconds": int(info["duration"]["nanoseconds"])},
        "starting_time": {"nanoseconds_since_epoch": int(info["starting_time"]["nanoseconds_since_epoch"])},
        "message_count": int(info["message_count"]),
        "topics_with_message_count": [
            {
                "topic_metadata": {
                    "name": t["topic_metadata"]["name"],
                    "type": t["topic_metadata"]["type"],
                    "serialization_format": t["topic_metadata"]["serialization_format"],
                    "offered_qos_profiles": t["topic_metadata"]["offered_qos_profiles"],
                },
                "message_count": int(t["message_count"]),
            }
            for t in info["topics_with_message_count"]
        ],
        "compression_format": "",
        "compression_mode": "",
        "relative_file_paths": list(info["relative_file_paths"]),
        "files": [
            {
                "path": f["path"],
                "starting_time": {"nanoseconds_since_epoch": int(f["starting_time"]["nanoseconds_since_epoch"])},
                "duration": {"nanoseconds": int(f["duration"]["nanoseconds"])},
                "message_count": int(f["message_count"]),
            }
            for f in info["files"]
        ],
    }


class BagWriter:
    """Write a rosbag2 bag for a ROS 2 distro (context manager).

    ``with BagWriter(path) as bag: bag.add_topic(...); bag.write(...)``: on a clean exit the bag appears at
    ``path``; on an exception (or :meth:`abort`) nothing does. Build the messages with :attr:`types`
    (``rosbags_types(distro)``), e.g. ``messages.image_message(bag.types, ...)``.

    Args:
        path: the bag directory to create.
        distro: ``"humble"`` (metadata version 5) or ``"jazzy"`` (version 9).
        storage: ``"sqlite3"`` (the default of both distros) or ``"mcap"``.
        overwrite: replace an existing bag at ``path`` (only a rosbag2 directory or an empty one is replaced).

    Raises:
        BagError: ``path`` exists (without ``overwrite``, or it is not a bag).
        ConfigError: unknown ``distro`` or ``storage``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        distro: str = "humble",
        storage: str = "sqlite3",
        overwrite: bool = False,
    ) -> None:
        self.path = Path(path)
        self.types = rosbags_types(distro)
        if storage not in STORAGE_PLUGINS:
            raise ConfigError(f"storage: expected one of {', '.join(STORAGE_PLUGINS)}, got {storage!r}")
        self.distro = distro
        self.storage = storage
        self.metadata_version = METADATA_VERSION_BY_DISTRO[distro]
        self._overwrite = bool(overwrite)
        self._check_target()
        self._staging = self.path.parent / f"{self.path.name}.partial"
        self._writer: Any = None
        self._connections: dict[str, Any] = {}
        self._latched: set[str] = set()
        self._counts: dict[str, int] = {}

    def _check_target(self) -> None:
        if not self.path.exists() and not self.path.is_symlink():
            return
        if not self._overwrite:
            raise BagError(f"{self.path}: already exists; pass overwrite=True to replace it")
        if not self.path.is_dir() or (any(self.path.iterdir()) and not (self.path / "metadata.yaml").is_file()):
            raise BagError(f"{self.path}: exists and is not a rosbag2 directory; refusing to replace it")

    @property
    def message_counts(self) -> dict[str, int]:
        """Messages written so far per topic."""
        return dict(self._counts)

    def open(self) -> BagWriter:
        """Start writing into ``<path>.partial/`` (removing a stale one left by a killed run)."""
        from rosbags.rosbag2 import StoragePlugin, Writer

        if self._writer is not None:
            raise BagError(f"{self.path}: the bag writer is already open")
        self._check_target()
        if self._staging.exists():
            shutil.rmtree(self._staging)
        self._staging.mkdir(parents=True)
        plugin = StoragePlugin.SQLITE3 if self.storage == "sqlite3" else StoragePlugin.MCAP
        try:
            self._writer = Writer(
                self._staging / self.path.name, version=_ROSBAGS_WRITER_VERSION[self.distro], storage_plugin=plugin
            )
            self._writer.open()
        except Exception as exc:
            self._writer = None
            shutil.rmtree(self._staging, ignore_errors=True)
            raise BagError(f"{self.path}: cannot create bag ({exc})") from exc
        return self

    def _require_open(self) -> Any:
        if self._writer is None:
            raise BagError(f"{self.path}: the bag writer is not open (use it as a context manager or call open())")
        return self._writer

    def add_topic(self, topic: str, msgtype: str, *, latched: bool = False) -> None:
        """Declare ``topic`` with message type ``msgtype`` (full name). ``latched`` records the offered QoS as
        reliable + TRANSIENT_LOCAL (depth 1), otherwise reliable + volatile (depth 10).

        Raises:
            BagError: writer not open, a bad or duplicate topic name, or a type the distro does not define.
        """
        writer = self._require_open()
        if not isinstance(topic, str) or not topic.startswith("/") or any(c.isspace() for c in topic):
            raise BagError(f"{self.path}: topic name {topic!r} must be absolute ('/name') without whitespace")
        if topic in self._connections:
            raise BagError(f"{self.path}: topic {topic!r} was already added")
        if msgtype not in self.types.typestore.fielddefs:
            raise BagError(f"{self.path}: message type {msgtype!r} is not defined in ROS 2 {self.distro}")
        self._connections[topic] = writer.add_connection(
            topic, msgtype, typestore=self.types.typestore, offered_qos_profiles=[_qos_profile(latched)]
        )
        self._counts[topic] = 0
        if latched:
            self._latched.add(topic)

    def write(self, topic: str, timestamp_ns: int, msg: Any) -> None:
        """Serialize ``msg`` (a rosbags message built with :attr:`types`) as CDR and store it at receive time
        ``timestamp_ns`` (integer ns).

        Raises:
            BagError: unknown topic, a bad timestamp, or a message that is not a valid instance of the topic's type.
        """
        conn = self._topic(topic, timestamp_ns)
        actual = getattr(msg, "__msgtype__", None)
        if actual is not None and actual != conn.msgtype:
            raise BagError(f"{self.path}: topic {topic!r} has type {conn.msgtype}, got a {actual} message")
        try:
            data = self.types.typestore.serialize_cdr(msg, conn.msgtype)
        except Exception as exc:
            raise BagError(
                f"{self.path}: cannot serialize the message for {topic!r} as {conn.msgtype} "
                f"({type(exc).__name__}: {exc}); build it with BagWriter.types"
            ) from exc
        self._store(topic, conn, timestamp_ns, data)

    def write_raw(self, topic: str, timestamp_ns: int, data: bytes | memoryview) -> None:
        """Store already-serialized CDR bytes (e.g. copied from another bag) on ``topic``."""
        conn = self._topic(topic, timestamp_ns)
        self._store(topic, conn, timestamp_ns, bytes(data))

    def _topic(self, topic: str, timestamp_ns: Any) -> Any:
        self._require_open()
        conn = self._connections.get(topic)
        if conn is None:
            raise BagError(f"{self.path}: topic {topic!r} was not added; added: {sorted(self._connections)}")
        if isinstance(timestamp_ns, bool) or not isinstance(timestamp_ns, int) or not 0 <= timestamp_ns < 2**63:
            raise BagError(f"{self.path}: timestamp_ns must be a non-negative int64 in ns, got {timestamp_ns!r}")
        return conn

    def _store(self, topic: str, conn: Any, timestamp_ns: int, data: bytes | memoryview) -> None:
        try:
            self._writer.write(conn, int(timestamp_ns), data)
        except Exception as exc:
            raise BagError(f"{self.path}: writing to {topic!r} failed ({exc})") from exc
        self._counts[topic] += 1

    def close(self) -> None:
        """Finish the bag and move it to ``path`` (replacing an old bag when ``overwrite``)."""
        writer = self._require_open()
        self._writer = None
        bag_dir = self._staging / self.path.name
        try:
            writer.close()
            if self.metadata_version == 5:
                self._rewrite_metadata_v5(bag_dir)
            self._check_target()
            old = self._staging / ".replaced"
            if self.path.exists():
                os.replace(self.path, old)
            os.replace(bag_dir, self.path)
        except BaseException:
            shutil.rmtree(self._staging, ignore_errors=True)
            raise
        shutil.rmtree(self._staging, ignore_errors=True)

    def abort(self) -> None:
        """Drop the partial bag (idempotent)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):  # best effort: the staging folder is removed below
                writer.abort()
        shutil.rmtree(self._staging, ignore_errors=True)

    def _rewrite_metadata_v5(self, bag_dir: Path) -> None:
        metadata_path = bag_dir / "metadata.yaml"
        info = yaml.safe_load(metadata_path.read_text(encoding="utf-8"))["rosbag2_bagfile_information"]
        v5 = _metadata_v5(info)
        dump = yaml.safe_dump(v5, sort_keys=False, default_flow_style=False)
        write_text_atomic(metadata_path, yaml.safe_dump({"rosbag2_bagfile_information": v5}, sort_keys=False))
        if self.storage == "sqlite3":
            db_path = bag_dir / info["relative_file_paths"][0]
            with sqlite3.connect(db_path) as db:  # the copy rosbag2 (>= 0.15.4) keeps inside the database
                db.execute("UPDATE metadata SET metadata_version = 5, metadata = ?", (dump.strip(),))
            db.close()

    def __enter__(self) -> BagWriter:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
