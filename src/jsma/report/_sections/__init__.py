"""One module per section of the report, each turning stored, typed results into a
`Section` (see `jsma.report._page`)."""

__all__: list[str] = []
