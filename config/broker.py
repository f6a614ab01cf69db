"""The embedded default's broker: kombu's filesystem transport, made safe to read while written.

kombu writes a message file in place (open, lock, write) while consumers list the folder and
move files out to read them. The lock does not stop that move, so a consumer can take a
file between its open and its write, read nothing, and its JSONDecodeError ends the whole
worker ("Unrecoverable error"). Here a message is written under a name no consumer looks
at and renamed into place once complete (a rename is atomic within a folder), and a message
that still cannot be decoded is moved to ``bad_folder`` with a log line instead of ending
the worker. config/celery.py makes every ``filesystem://`` URL use it.
"""

import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from queue import Empty

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

logger = logging.getLogger(__name__)


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        # Consumers take names in string order. kombu stamps monotonic milliseconds, whose
        # width grows with uptime ("9999_" sorts after "10000_") and which restart at boot;
        # wall-clock milliseconds keep 13 digits until the year 2286, so order is FIFO.
        final_name = f"{time.time_ns() // 1_000_000}_{uuid.uuid4()}.{queue}.msg"
        # A leading dot: consumers only take names of the form <stamp>.<queue>.msg.
        partial = Path(self.data_folder_out) / f".{final_name}.partial"
        try:
            partial.write_bytes(str_to_bytes(dumps(payload)))
            os.replace(partial, Path(self.data_folder_out) / final_name)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise ChannelError(f"Cannot add file {final_name!r} to directory") from exc

    def _get(self, queue):
        wanted = f"{queue}.msg"
        for filename in sorted(os.listdir(self.data_folder_in)):
            if filename.partition(".")[2] != wanted:
                continue
            processed_folder = (
                self.processed_folder if self.store_processed else tempfile.gettempdir()
            )
            try:
                shutil.move(os.path.join(self.data_folder_in, filename), processed_folder)
            except OSError:
                continue  # another consumer took it first
            path = os.path.join(processed_folder, filename)
            try:
                with open(path, "rb") as message_file:
                    payload = message_file.read()
            except OSError as exc:
                raise ChannelError(f"Cannot read file {path!r} from queue.") from exc
            try:
                message = loads(bytes_to_str(payload))
            except (ValueError, UnicodeDecodeError) as error:
                self._set_aside(path, filename, error)
                continue
            if not self.store_processed:
                os.remove(path)
            return message
        raise Empty()

    def _set_aside(self, path: str, filename: str, error: Exception) -> None:
        bad_folder = Path(self.bad_folder)
        bad_folder.mkdir(parents=True, exist_ok=True)
        shutil.move(path, bad_folder / filename)
        reason = error.msg if isinstance(error, json.JSONDecodeError) else str(error)
        logger.error(
            "broker message cannot be decoded, moved aside file=%s reason=%s",
            bad_folder / filename,
            reason,
        )

    @property
    def bad_folder(self) -> str:
        default = os.path.join(os.path.dirname(os.path.abspath(self.data_folder_in)), "bad")
        return self.transport_options.get("bad_folder", default)


class Transport(filesystem.Transport):
    Channel = Channel
