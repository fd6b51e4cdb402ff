"""Small helpers with no knowledge of CornerNet."""
