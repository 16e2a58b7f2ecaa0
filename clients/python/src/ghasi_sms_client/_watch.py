"""Where a watch stream stands, shared by the async and the sync client."""

from __future__ import annotations

from collections.abc import Sequence

from ghasi_sms_client._proto import sms_pb2 as pb


class WatchPosition:
    """The cursor to resume from, and whether the stream is over for good."""

    def __init__(self, cursor: str) -> None:
        self.cursor = cursor
        self.finished = False

    def request(self, message_ids: Sequence[str]) -> pb.WatchMessageStatusRequest:
        return pb.WatchMessageStatusRequest(message_ids=list(message_ids),
                                            after_cursor=self.cursor)

    def take(self, item: pb.WatchMessageStatusResponse) -> pb.StatusEvent | None:
        """Notes what the item says; returns it when it is an event for the caller."""
        kind = item.WhichOneof("kind")
        if kind == "event":
            self.cursor = item.event.cursor
            return item.event
        if kind == "heartbeat":
            self.cursor = item.heartbeat.cursor or self.cursor
        elif kind == "end":
            self.cursor = item.end.cursor or self.cursor
            # SERVER_SHUTDOWN is not the end: the caller reconnects from the cursor.
            self.finished = item.end.reason == pb.WATCH_END_REASON_ALL_FINAL
        return None
