"""The reference route's allow-list (the registry's ``references`` section): the tables the
gateway may read notes and images from, and the stages it may read image files from, inside
Snowflake. Pure: no I/O.

Names are interpolated into SQL (``statement.py``), so each is a plain unquoted identifier,
checked when the registry loads (cold start); every value travels as a bound parameter.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from spcs_gateway.model_signature import StrictModel as _Strict

_COLUMN = r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$"
_TABLE = r"^[A-Za-z_][A-Za-z0-9_$]*\.[A-Za-z_][A-Za-z0-9_$]*\.[A-Za-z_][A-Za-z0-9_$]*$"


class NoteTable(_Strict):
    """An allow-listed note table: one note per key (per version when versioned)."""

    table: str = Field(pattern=_TABLE, description="DB.SCHEMA.TABLE")
    key_column: str = Field(pattern=_COLUMN)
    text_column: str = Field(pattern=_COLUMN)
    # Compared with a reference's ``version`` (a version number or an updated-at value).
    version_column: str | None = Field(default=None, pattern=_COLUMN)


class ImageTable(_Strict):
    """An allow-listed image table: the image bytes (BINARY) of one image per key."""

    table: str = Field(pattern=_TABLE, description="DB.SCHEMA.TABLE")
    key_column: str = Field(pattern=_COLUMN)
    image_column: str = Field(pattern=_COLUMN)
    version_column: str | None = Field(default=None, pattern=_COLUMN)


class ImageStage(_Strict):
    """An allow-listed stage of image files (a directory table enabled): a reference names a
    file on it by its relative path; the reader function reads the bytes inside Snowflake."""

    stage: str = Field(pattern=_TABLE, description="DB.SCHEMA.STAGE")


# The reader UDF's name when ``file_reader`` is not set: in the stage's own schema (where
# infra/snowflake/11 creates it next to the example stage).
DEFAULT_FILE_READER = "READ_STAGED_FILE"


class ReferenceSettings(_Strict):
    note_tables: list[NoteTable] = Field(default_factory=list)
    image_tables: list[ImageTable] = Field(default_factory=list)
    image_stages: list[ImageStage] = Field(default_factory=list)
    # The Python UDF (DB.SCHEMA.NAME) that answers a staged file's bytes (BINARY) for a scoped
    # URL. Unset: ``<stage's DB>.<stage's SCHEMA>.READ_STAGED_FILE``.
    file_reader: str | None = Field(default=None, pattern=_TABLE)
    # The allow-listed note table the API's Cortex Search service indexes: search by reference
    # answers its keys (never the text).
    search_table: str | None = Field(default=None, pattern=_TABLE)

    @model_validator(mode="after")
    def _unique(self) -> ReferenceSettings:
        for tables in (self.note_tables, self.image_tables):
            names = [t.table.upper() for t in tables]
            if len(names) != len(set(names)):
                raise ValueError("a table is listed twice")
        stages = [s.stage.upper() for s in self.image_stages]
        if len(stages) != len(set(stages)):
            raise ValueError("a stage is listed twice")
        if self.search_table is not None and self.note_table(self.search_table) is None:
            raise ValueError("search_table must be one of note_tables")
        return self

    def note_table(self, name: str) -> NoteTable | None:
        """The allow-listed note table of that name (identifiers compare upper-cased)."""
        wanted = name.upper()
        return next((t for t in self.note_tables if t.table.upper() == wanted), None)

    def image_table(self, name: str) -> ImageTable | None:
        wanted = name.upper()
        return next((t for t in self.image_tables if t.table.upper() == wanted), None)

    def image_stage(self, name: str) -> ImageStage | None:
        """The allow-listed image stage of that name (identifiers compare upper-cased)."""
        wanted = name.upper()
        return next((s for s in self.image_stages if s.stage.upper() == wanted), None)

    def reader_for(self, stage: ImageStage) -> str:
        """The reader UDF that reads files of ``stage``: ``file_reader``, or the default name
        in the stage's schema."""
        if self.file_reader is not None:
            return self.file_reader
        database, schema, _ = stage.stage.split(".")
        return f"{database}.{schema}.{DEFAULT_FILE_READER}"
