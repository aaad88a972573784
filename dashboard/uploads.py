"""The bucket page's import upload: a file of any format api.imports reads, up to a size.

Django's own handlers keep a small upload in memory and write a larger one to a temporary file
(FILE_UPLOAD_MAX_MEMORY_SIZE, 2.5 MiB), so memory stays flat whatever the size; the whole file
is on disk before any of it is imported. CappedUpload, first of the request's handlers, bounds
that disk (settings.THISDB_PAGE_IMPORT_MAX_BYTES).
"""

from django.core.files.uploadhandler import FileUploadHandler, StopUpload


class CappedUpload(FileUploadHandler):
    """Stops an upload once its files pass `limit` bytes (counted across files, so many small
    ones cannot add up either): what was written goes, `too_large` says so, and the rest of the
    body is read and dropped. Dropped rather than left unread: a browser still sending a body
    the server stopped reading may see the connection reset instead of the page that says why."""

    def __init__(self, request, limit: int):
        super().__init__(request)
        self.limit = limit
        self.received = 0
        self.too_large = False
        self.name = ""  # the file's name as the browser sent it

    def new_file(self, field_name, file_name, *args, **kwargs):
        super().new_file(field_name, file_name, *args, **kwargs)
        self.name = file_name or ""

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > self.limit:
            self.too_large = True
            # The other handlers' files are closed (a temporary file is deleted); the rest of
            # the body is read to its end, its bytes dropped.
            raise StopUpload(connection_reset=False)
        return raw_data  # on to Django's handlers, which keep it

    def file_complete(self, file_size: int) -> None:
        return None  # the file is the next handler's
