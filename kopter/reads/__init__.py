"""One query and one view per area, that the command line and the read API both call."""
