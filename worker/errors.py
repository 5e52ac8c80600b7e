"""One small exception class per condition the domain reports."""


class RecordingCacheError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(RecordingCacheError):
    """A setting is missing or malformed; the message names the variable."""


class InvalidSid(RecordingCacheError, ValueError):
    """A SID does not match Twilio's format."""


class UpstreamError(RecordingCacheError):
    """Twilio could not deliver the media this time; worth retrying."""


class UpstreamRateLimited(UpstreamError):
    """Twilio answered 429 (error 20429: too many concurrent requests); ``retry_after`` in seconds when it said."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamNotReady(UpstreamError):
    """Twilio knows the recording but its media is not available yet (404)."""


class RecordingNotFound(RecordingCacheError):
    """Twilio does not know the recording or call at all; final."""


class RecordingUnavailable(RecordingNotFound):
    """Twilio knows the recording and marks it ``absent`` or ``failed`` (with an
    ErrorCode, e.g. 16101 too short, 16102 silent and deleted); final."""

    def __init__(self, recording_sid: str, status: str, error_code: int | None):
        code = f" (error {error_code})" if error_code else ""
        super().__init__(f"Twilio marks {recording_sid} {status}{code}")
        self.status, self.error_code = status, error_code


class IncompleteMedia(UpstreamError):
    """The body ended before Content-Length or is not audio of the format."""


class StorageError(UpstreamError):
    """The volume refused the write (disk full, I/O error); retried later."""


class LockBusy(RecordingCacheError):
    """Another process holds the download lock for this recording."""

    def __init__(self, message: str, ttl_left: float = 0.0, holder: str = "unknown"):
        super().__init__(message)
        self.ttl_left = ttl_left
        self.holder = holder


class LockLost(UpstreamError):
    """Our lock expired or was taken over while downloading; stop writing."""
