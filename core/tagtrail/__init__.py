"""tagtrail: warehouse RFID and barcode tracking at the edge."""

__version__ = "0.1.0"
