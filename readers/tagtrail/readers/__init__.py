"""Reader drivers: device bytes in, typed reads out.

One file per wire protocol under :mod:`tagtrail.readers.protocols` (pure decoding, no I/O);
transports and drivers beside it; :mod:`tagtrail.readers.model` holds the types the edge
agent consumes.
"""
