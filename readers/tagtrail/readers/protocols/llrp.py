"""LLRP (EPCglobal Low Level Reader Protocol 1.0.1 / 1.1): the subset tagtrail speaks.

Fixed UHF readers (Impinj Speedway and R700, Zebra FX7500 and FX9600, ...) speak LLRP over
TCP, port 5084. Pure decoding and encoding: no I/O, no logging. Bad input gives a typed
:class:`DecodeFailure`, never an exception.

Licence: tagtrail does not use sllurp (GPL-3.0). This module is tagtrail's own
implementation (Apache-2.0) of the LLRP subset it needs, written from the specification;
it is tested against the MIT-licensed llrpkit emulator and encoder (a dev dependency only).

Message
=======
Every message, both directions, big-endian::

    +--------+-------+--------------+----------------+-----------------+---------+
    | Rsvd 3 | Ver 3 | Type 10 bits | Length 32 bits | MessageID 32    | Body    |
    +--------+-------+--------------+----------------+-----------------+---------+
    |<------- 2 bytes ------------>|<-- 4 bytes --->|<--- 4 bytes --->|

* ``Length`` counts the whole message, header included (at least 10).
* ``Ver`` is 1 for LLRP 1.0.1 and 2 for LLRP 1.1; ``Rsvd`` is 0.
* ``MessageID`` is chosen by the sender of a request; the reader copies it into the
  response, which is how responses are matched to requests. Reader-initiated messages
  (reports, keep-alives, events) carry the reader's own ids.
* There is no checksum and no delimiter: TCP delivers the stream intact, and framing is
  by ``Length``.

Parameters
==========
A message body is fixed fields followed by parameters, of two shapes::

    TLV:  | Rsvd 6 | Type 10 | Length 16 (whole parameter) | fields | sub-parameters |
    TV:   | 1 | Type 7 | value (fixed size, known from the type)                    |

TLV types are 128-1023 (1023 is a vendor ``Custom`` parameter: VendorID u32, Subtype
u32, data); TV types are 1-127 and their size is fixed by the specification:

====  =========================  =====  ====  ===========================  =====
TV    parameter                  bytes  TV    parameter                    bytes
====  =========================  =====  ====  ===========================  =====
1     AntennaID (u16)            3      11    C1G2_CRC (u16)               3
2     FirstSeenTimestampUTC u64  9      12    C1G2_PC (u16)                3
3     FirstSeenTimestampUptime   9      13    EPC-96 (96 bits)             13
4     LastSeenTimestampUTC u64   9      14    SpecIndex (u16)              3
5     LastSeenTimestampUptime    9      15    ClientRequestOpSpecResult    3
6     PeakRSSI (s8, dBm)         2      16    AccessSpecID (u32)           5
7     ChannelIndex (u16)         3      17    OpSpecID (u16)               3
8     TagSeenCount (u16)         3      18    C1G2SingulationDetails       5
9     ROSpecID (u32)             5      19    C1G2XPCW1 (u16)              3
10    InventoryParameterSpecID   3      20    C1G2XPCW2 (u16)              3
====  =========================  =====  ====  ===========================  =====

Messages used
=============
Reader -> client (decoded into records):

* ``RO_ACCESS_REPORT`` (61): 0-n ``TagReportData`` (240), each ``EPC-96`` (TV 13) or
  ``EPCData`` (241: EPCLengthBits u16, EPC bits padded to whole bytes), then optional
  ``AntennaID`` (TV 1), ``PeakRSSI`` (TV 6), ``ChannelIndex`` (TV 7),
  ``FirstSeenTimestampUTC`` (TV 2, microseconds since 1970), ``LastSeenTimestampUTC``
  (TV 4), ``TagSeenCount`` (TV 8), ``ROSpecID`` (TV 9), ``C1G2_PC`` (TV 12); others and
  vendor ``Custom`` parameters are skipped. One :class:`TagReport` per ``TagReportData``.
* ``*_RESPONSE`` and ``ERROR_MESSAGE`` (100): ``LLRPStatus`` (287: StatusCode u16,
  ErrorDescriptionByteCount u16, UTF-8 description, optional ``FieldError`` 288 and
  ``ParameterError`` 289) -> :class:`Response`. ``GET_READER_CAPABILITIES_RESPONSE`` (11)
  also yields ``GeneralDeviceCapabilities`` (137: MaxNumberOfAntennaSupported u16, flags
  u16, DeviceManufacturerName u32 (IANA PEN), ModelName u32, firmware as u16 byte count +
  UTF-8).
* ``KEEPALIVE`` (62, empty) -> :class:`Keepalive`; the client answers ``KEEPALIVE_ACK``.
* ``READER_EVENT_NOTIFICATION`` (63): ``ReaderEventNotificationData`` (246) with a
  ``UTCTimestamp`` (128) or ``Uptime`` (129) and events, among them
  ``ConnectionAttemptEvent`` (256: Status u16, 0 = Success) which a reader sends right
  after the TCP connect, and ``ConnectionCloseEvent`` (257) -> :class:`ReaderEvent`.

Client -> reader (encoded here; decoded as :class:`Message` records):

=====================  ====  ==================================================
message                type  body
=====================  ====  ==================================================
GET_READER_CAPABILITIES  1   RequestedData u8 (0 all)
SET_READER_CONFIG        3   ResetToFactoryDefault bit + 7 rsvd, ReaderEventNotificationSpec
                             (244 of EventNotificationState 245), KeepaliveSpec (220:
                             trigger u8 1 periodic, interval u32 ms), EventsAndReports (226)
CLOSE_CONNECTION        14   empty (answer CLOSE_CONNECTION_RESPONSE 4)
ADD_ROSPEC              20   ROSpec (177), see :func:`add_rospec`
DELETE_ROSPEC           21   ROSpecID u32 (0 = all)
START_ROSPEC            22   ROSpecID u32
STOP_ROSPEC             23   ROSpecID u32
ENABLE_ROSPEC           24   ROSpecID u32
ENABLE_EVENTS_AND_REPORTS 64 empty, no response (sent by sllurp-style clients)
KEEPALIVE_ACK           72   empty
=====================  ====  ==================================================

Responses are the request type + 10 (``ADD_ROSPEC`` 20 -> 30 ...), except
``CLOSE_CONNECTION_RESPONSE`` (4) and ``GET_READER_CAPABILITIES_RESPONSE`` (11).

ROSpec (177): ROSpecID u32, Priority u8, CurrentState u8 (0 disabled), then
ROBoundarySpec (178: ROSpecStartTrigger 179 type u8 0 null / 1 immediate;
ROSpecStopTrigger 182 type u8 0 null + duration u32), AISpec (183: AntennaCount u16,
AntennaIDs u16 each; AISpecStopTrigger 184 type u8 1 duration + ms u32;
InventoryParameterSpec 186: id u16, ProtocolID u8 1 = EPCGlobalClass1Gen2, 0-n
AntennaConfiguration 222: AntennaID u16, optional RFTransmitter 224 (HopTableID u16,
ChannelIndex u16, TransmitPower u16 table index), C1G2InventoryCommand 330
(TagInventoryStateAware bit + 7 rsvd, optional C1G2RFControl 335: ModeIndex u16,
Tari u16; C1G2SingulationControl 336: Session 2 bits + 6 rsvd, TagPopulation u16,
TagTransitTime u32)), and ROReportSpec (237: ROReportTrigger u8 1 = upon N tags or end
of AISpec, N u16 (0 = unlimited), TagReportContentSelector 238: 10 enable bits
ROSpecID, SpecIndex, InventoryParameterSpecID, AntennaID, ChannelIndex, PeakRSSI,
FirstSeenTimestamp, LastSeenTimestamp, TagSeenCount, AccessSpecID + 6 rsvd).

Failures
========
``DecodeFailure.reason`` is one of:

* ``garbage``: a run of bytes that start no plausible header (one failure per run,
  ``data`` keeps at most :data:`MAX_FAILURE_DATA` bytes). A plausible header has
  ``Rsvd`` 0, a known message type and ``10 <= Length <= max_length``.
* ``length``: a message whose body is shorter than its message type's fixed fields.
* ``sanity``: a version other than 1 or 2; bad parameter lengths (a TLV shorter than its
  header or running past its parent, an unknown TV type, reserved TLV bits set, fields
  running past their parameter); impossible content (``TagReportData`` without an EPC,
  an ``EPCData`` whose bit count disagrees with its length, a response without
  ``LLRPStatus``).
* ``truncated``: a message cut short by a newer good message, or incomplete at
  :meth:`StreamDecoder.flush`.

Resynchronisation: the decoder looks for a plausible header byte by byte and waits for
its whole ``Length``. A message that then fails ``length`` or ``sanity`` is searched for
a later plausible header starting a complete good message; if one is found the bad one
was ``truncated`` there and decoding resumes at it (a message after garbage holding a
false header is found). Decisions are taken on complete information only, so the output
does not depend on how the input is chunked.

Source
======
EPCglobal "Low Level Reader Protocol (LLRP)" Version 1.0.1 (ratified standard, 2007) and
Version 1.1 (2010): section 15 (binary encoding: message header, TLV/TV parameters),
the message and parameter sections for the numbers and field layouts above, and
section 14.1 (status codes). Cross-checked byte for byte against llrpkit 0.3's encoder.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tagtrail.errors import ProtocolError
from tagtrail.readers.protocols.base import (
    DecodeFailure,
    FailureReason,
    ProtocolInfo,
    StreamDecoderBase,
    TagView,
    failure_to_dict,
)

HEADER_LEN = 10
DEFAULT_PORT = 5084
VERSION_1_0_1 = 1
VERSION_1_1 = 2
MAX_LENGTH = 4 * 1024 * 1024
"""The longest message a header may claim (a report of ~50 000 tags)."""

# --- message types ---------------------------------------------------------------------

GET_READER_CAPABILITIES = 1
GET_READER_CONFIG = 2
SET_READER_CONFIG = 3
CLOSE_CONNECTION_RESPONSE = 4
GET_READER_CAPABILITIES_RESPONSE = 11
GET_READER_CONFIG_RESPONSE = 12
SET_READER_CONFIG_RESPONSE = 13
CLOSE_CONNECTION = 14
ADD_ROSPEC = 20
DELETE_ROSPEC = 21
START_ROSPEC = 22
STOP_ROSPEC = 23
ENABLE_ROSPEC = 24
DISABLE_ROSPEC = 25
GET_ROSPECS = 26
ADD_ROSPEC_RESPONSE = 30
DELETE_ROSPEC_RESPONSE = 31
START_ROSPEC_RESPONSE = 32
STOP_ROSPEC_RESPONSE = 33
ENABLE_ROSPEC_RESPONSE = 34
DISABLE_ROSPEC_RESPONSE = 35
GET_ROSPECS_RESPONSE = 36
ADD_ACCESSSPEC = 40
DELETE_ACCESSSPEC = 41
ENABLE_ACCESSSPEC = 42
DISABLE_ACCESSSPEC = 43
GET_ACCESSSPECS = 44
CLIENT_REQUEST_OP = 45
GET_SUPPORTED_VERSION = 46
SET_PROTOCOL_VERSION = 47
ADD_ACCESSSPEC_RESPONSE = 50
DELETE_ACCESSSPEC_RESPONSE = 51
ENABLE_ACCESSSPEC_RESPONSE = 52
DISABLE_ACCESSSPEC_RESPONSE = 53
GET_ACCESSSPECS_RESPONSE = 54
CLIENT_REQUEST_OP_RESPONSE = 55
GET_SUPPORTED_VERSION_RESPONSE = 56
SET_PROTOCOL_VERSION_RESPONSE = 57
GET_REPORT = 60
RO_ACCESS_REPORT = 61
KEEPALIVE = 62
READER_EVENT_NOTIFICATION = 63
ENABLE_EVENTS_AND_REPORTS = 64
KEEPALIVE_ACK = 72
ERROR_MESSAGE = 100
CUSTOM_MESSAGE = 1023

MESSAGE_NAMES: dict[int, str] = {
    value: name
    for name, value in dict(globals()).items()
    if name.isupper()
    and isinstance(value, int)
    and name
    not in {
        "HEADER_LEN",
        "DEFAULT_PORT",
        "VERSION_1_0_1",
        "VERSION_1_1",
        "MAX_LENGTH",
    }
}
"""Every message type this module knows, by number (the plausible-header set)."""

_FIXED_BODY: dict[int, int] = {
    GET_READER_CAPABILITIES: 1,
    GET_READER_CONFIG: 7,
    SET_READER_CONFIG: 1,
    ADD_ROSPEC: 0,
    DELETE_ROSPEC: 4,
    START_ROSPEC: 4,
    STOP_ROSPEC: 4,
    ENABLE_ROSPEC: 4,
    DISABLE_ROSPEC: 4,
    DELETE_ACCESSSPEC: 4,
    ENABLE_ACCESSSPEC: 4,
    DISABLE_ACCESSSPEC: 4,
    SET_PROTOCOL_VERSION: 1,
    GET_SUPPORTED_VERSION_RESPONSE: 2,
    CUSTOM_MESSAGE: 5,
}
"""Bytes of fixed fields before a message's parameters (0 when not listed)."""

_RESPONSES = frozenset(
    {
        CLOSE_CONNECTION_RESPONSE,
        GET_READER_CAPABILITIES_RESPONSE,
        GET_READER_CONFIG_RESPONSE,
        SET_READER_CONFIG_RESPONSE,
        ADD_ROSPEC_RESPONSE,
        DELETE_ROSPEC_RESPONSE,
        START_ROSPEC_RESPONSE,
        STOP_ROSPEC_RESPONSE,
        ENABLE_ROSPEC_RESPONSE,
        DISABLE_ROSPEC_RESPONSE,
        GET_ROSPECS_RESPONSE,
        ADD_ACCESSSPEC_RESPONSE,
        DELETE_ACCESSSPEC_RESPONSE,
        ENABLE_ACCESSSPEC_RESPONSE,
        DISABLE_ACCESSSPEC_RESPONSE,
        GET_ACCESSSPECS_RESPONSE,
        SET_PROTOCOL_VERSION_RESPONSE,
        ERROR_MESSAGE,
    }
)

RESPONSE_OF: dict[int, int] = {
    GET_READER_CAPABILITIES: GET_READER_CAPABILITIES_RESPONSE,
    GET_READER_CONFIG: GET_READER_CONFIG_RESPONSE,
    SET_READER_CONFIG: SET_READER_CONFIG_RESPONSE,
    CLOSE_CONNECTION: CLOSE_CONNECTION_RESPONSE,
    ADD_ROSPEC: ADD_ROSPEC_RESPONSE,
    DELETE_ROSPEC: DELETE_ROSPEC_RESPONSE,
    START_ROSPEC: START_ROSPEC_RESPONSE,
    STOP_ROSPEC: STOP_ROSPEC_RESPONSE,
    ENABLE_ROSPEC: ENABLE_ROSPEC_RESPONSE,
    DISABLE_ROSPEC: DISABLE_ROSPEC_RESPONSE,
    GET_ROSPECS: GET_ROSPECS_RESPONSE,
    ADD_ACCESSSPEC: ADD_ACCESSSPEC_RESPONSE,
    DELETE_ACCESSSPEC: DELETE_ACCESSSPEC_RESPONSE,
    ENABLE_ACCESSSPEC: ENABLE_ACCESSSPEC_RESPONSE,
    DISABLE_ACCESSSPEC: DISABLE_ACCESSSPEC_RESPONSE,
    GET_ACCESSSPECS: GET_ACCESSSPECS_RESPONSE,
    SET_PROTOCOL_VERSION: SET_PROTOCOL_VERSION_RESPONSE,
}
"""The response type of each request that has one."""

# --- parameter types -------------------------------------------------------------------

TV_ANTENNA_ID = 1
TV_FIRST_SEEN_UTC = 2
TV_FIRST_SEEN_UPTIME = 3
TV_LAST_SEEN_UTC = 4
TV_LAST_SEEN_UPTIME = 5
TV_PEAK_RSSI = 6
TV_CHANNEL_INDEX = 7
TV_TAG_SEEN_COUNT = 8
TV_ROSPEC_ID = 9
TV_INVENTORY_PARAMETER_SPEC_ID = 10
TV_C1G2_CRC = 11
TV_C1G2_PC = 12
TV_EPC_96 = 13
TV_SPEC_INDEX = 14
TV_CLIENT_REQUEST_OP_SPEC_RESULT = 15
TV_ACCESS_SPEC_ID = 16
TV_OP_SPEC_ID = 17
TV_C1G2_SINGULATION_DETAILS = 18
TV_C1G2_XPCW1 = 19
TV_C1G2_XPCW2 = 20

TV_SIZES: dict[int, int] = {
    1: 3,
    2: 9,
    3: 9,
    4: 9,
    5: 9,
    6: 2,
    7: 3,
    8: 3,
    9: 5,
    10: 3,
    11: 3,
    12: 3,
    13: 13,
    14: 3,
    15: 3,
    16: 5,
    17: 3,
    18: 5,
    19: 3,
    20: 3,
}
"""Whole size (type byte included) of every TV parameter."""

P_UTC_TIMESTAMP = 128
P_UPTIME = 129
P_GENERAL_DEVICE_CAPABILITIES = 137
P_ROSPEC = 177
P_RO_BOUNDARY_SPEC = 178
P_ROSPEC_START_TRIGGER = 179
P_ROSPEC_STOP_TRIGGER = 182
P_AISPEC = 183
P_AISPEC_STOP_TRIGGER = 184
P_INVENTORY_PARAMETER_SPEC = 186
P_KEEPALIVE_SPEC = 220
P_ANTENNA_CONFIGURATION = 222
P_RF_TRANSMITTER = 224
P_EVENTS_AND_REPORTS = 226
P_RO_REPORT_SPEC = 237
P_TAG_REPORT_CONTENT_SELECTOR = 238
P_TAG_REPORT_DATA = 240
P_EPC_DATA = 241
P_READER_EVENT_NOTIFICATION_SPEC = 244
P_EVENT_NOTIFICATION_STATE = 245
P_READER_EVENT_NOTIFICATION_DATA = 246
P_HOPPING_EVENT = 247
P_GPI_EVENT = 248
P_ROSPEC_EVENT = 249
P_REPORT_BUFFER_LEVEL_WARNING = 250
P_REPORT_BUFFER_OVERFLOW = 251
P_READER_EXCEPTION_EVENT = 252
P_RF_SURVEY_EVENT = 253
P_AISPEC_EVENT = 254
P_ANTENNA_EVENT = 255
P_CONNECTION_ATTEMPT_EVENT = 256
P_CONNECTION_CLOSE_EVENT = 257
P_LLRP_STATUS = 287
P_FIELD_ERROR = 288
P_PARAMETER_ERROR = 289
P_C1G2_INVENTORY_COMMAND = 330
P_C1G2_RF_CONTROL = 335
P_C1G2_SINGULATION_CONTROL = 336
P_CUSTOM = 1023

EVENT_NAMES: dict[int, str] = {
    P_HOPPING_EVENT: "hopping",
    P_GPI_EVENT: "gpi",
    P_ROSPEC_EVENT: "rospec",
    P_REPORT_BUFFER_LEVEL_WARNING: "report_buffer_level_warning",
    P_REPORT_BUFFER_OVERFLOW: "report_buffer_overflow",
    P_READER_EXCEPTION_EVENT: "reader_exception",
    P_RF_SURVEY_EVENT: "rf_survey",
    P_AISPEC_EVENT: "aispec",
    P_ANTENNA_EVENT: "antenna",
    P_CONNECTION_ATTEMPT_EVENT: "connection_attempt",
    P_CONNECTION_CLOSE_EVENT: "connection_close",
}

PROTOCOL_EPC_C1G2 = 1
"""InventoryParameterSpec ProtocolID of EPCglobal Class 1 Gen 2."""

# --- status codes (LLRP 1.0.1 section 14.1, 1.1 additions) ------------------------------

STATUS_NAMES: dict[int, str] = {
    0: "M_Success",
    100: "M_ParameterError",
    101: "M_FieldError",
    102: "M_UnexpectedParameter",
    103: "M_MissingParameter",
    104: "M_DuplicateParameter",
    105: "M_OverflowParameter",
    106: "M_OverflowField",
    107: "M_UnknownParameter",
    108: "M_UnknownField",
    109: "M_UnsupportedMessage",
    110: "M_UnsupportedVersion",
    111: "M_UnsupportedParameter",
    112: "M_UnexpectedMessage",
    200: "P_ParameterError",
    201: "P_FieldError",
    202: "P_UnexpectedParameter",
    203: "P_MissingParameter",
    204: "P_DuplicateParameter",
    205: "P_OverflowParameter",
    206: "P_OverflowField",
    207: "P_UnknownParameter",
    208: "P_UnknownField",
    209: "P_UnsupportedParameter",
    300: "A_Invalid",
    301: "A_OutOfRange",
    401: "R_DeviceError",
}
M_SUCCESS = 0
M_PARAMETER_ERROR = 100
M_FIELD_ERROR = 101
M_UNSUPPORTED_MESSAGE = 109
M_UNSUPPORTED_VERSION = 110

CONNECTION_STATUS_NAMES: dict[int, str] = {
    0: "Success",
    1: "Failed_A_Reader_Initiated_Connection_Already_Exists",
    2: "Failed_A_Client_Initiated_Connection_Already_Exists",
    3: "Failed_Reason_Other_Than_A_Connection_Already_Exists",
    4: "Another_Connection_Attempted",
}


def status_name(code: int) -> str:
    return STATUS_NAMES.get(code) or f"status_{code}"


def message_name(msg_type: int) -> str:
    return MESSAGE_NAMES.get(msg_type) or f"type_{msg_type}"


# --- records ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Status:
    """An ``LLRPStatus``: code, its name and the reader's description."""

    code: int
    description: str
    field_error: tuple[int, int] | None = None
    """``(FieldNum, ErrorCode)`` of a ``FieldError``, if any."""
    parameter_error: tuple[int, int] | None = None
    """``(ParameterType, ErrorCode)`` of a ``ParameterError``, if any."""

    @property
    def ok(self) -> bool:
        return self.code == M_SUCCESS

    @property
    def name(self) -> str:
        return status_name(self.code)

    def text(self) -> str:
        """One line for logs: ``M_ParameterError (100): no ROSpec 7``."""
        out = f"{self.name} ({self.code})"
        if self.description:
            out += f": {self.description}"
        if self.parameter_error is not None:
            out += f" [parameter {self.parameter_error[0]} error {self.parameter_error[1]}]"
        if self.field_error is not None:
            out += f" [field {self.field_error[0]} error {self.field_error[1]}]"
        return out


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What ``GeneralDeviceCapabilities`` says about the reader."""

    max_antennas: int
    manufacturer: int
    """IANA private enterprise number (25882 Impinj, 161 Motorola/Zebra)."""
    model: int
    firmware: str


@dataclass(frozen=True, slots=True)
class Response:
    """A ``*_RESPONSE`` or ``ERROR_MESSAGE`` with its status."""

    message_type: int
    message_id: int
    status: Status
    capabilities: Capabilities | None = None

    @property
    def name(self) -> str:
        return message_name(self.message_type)


@dataclass(frozen=True, slots=True)
class TagReport:
    """One ``TagReportData`` of an ``RO_ACCESS_REPORT``."""

    message_id: int
    epc: str
    antenna: int | None = None
    rssi_dbm: int | None = None
    channel_index: int | None = None
    first_seen_us: int | None = None
    last_seen_us: int | None = None
    seen_count: int | None = None
    rospec_id: int | None = None
    pc: int | None = None


@dataclass(frozen=True, slots=True)
class Keepalive:
    """A ``KEEPALIVE`` from the reader (answer with :func:`keepalive_ack`)."""

    message_id: int


@dataclass(frozen=True, slots=True)
class ReaderEvent:
    """A ``READER_EVENT_NOTIFICATION``: its timestamp and the events it holds."""

    message_id: int
    timestamp_us: int | None
    events: tuple[str, ...]
    connection_status: int | None = None
    """``ConnectionAttemptEvent`` status (0 = Success), if the event is one."""


@dataclass(frozen=True, slots=True)
class Message:
    """Any other well-formed message (client requests, empty reports, unknown ones)."""

    message_type: int
    message_id: int
    version: int
    body: bytes

    @property
    def name(self) -> str:
        return message_name(self.message_type)


Record = TagReport | Response | Keepalive | ReaderEvent | Message
Decoded = Record | DecodeFailure


class _BadError(Exception):
    """Internal: a message's content is bad, with the failure reason."""

    def __init__(self, reason: FailureReason) -> None:
        super().__init__(reason)
        self.reason: FailureReason = reason


_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_HDR = struct.Struct(">HII")
_PHDR = struct.Struct(">HH")


def _params(b: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """Walk the parameters in ``b[start:end]``: ``(type, start, end)`` each.

    Raises :class:`_BadError` ``sanity`` on bad parameter lengths.
    """
    out: list[tuple[int, int, int]] = []
    p = start
    while p < end:
        first = b[p]
        if first & 0x80:
            ptype = first & 0x7F
            size = TV_SIZES.get(ptype)
            if size is None or p + size > end:
                raise _BadError("sanity")
            out.append((ptype, p, p + size))
            p += size
            continue
        if p + 4 > end:
            raise _BadError("sanity")
        head, plen = _PHDR.unpack_from(b, p)
        if head >> 10 or plen < 4 or p + plen > end:
            raise _BadError("sanity")
        out.append((head, p, p + plen))
        p += plen
    return out


def _status(b: bytes, start: int, end: int) -> Status:
    if end - start < 8:
        raise _BadError("sanity")
    code, count = _PHDR.unpack_from(b, start + 4)
    p = start + 8 + count
    if p > end:
        raise _BadError("sanity")
    description = b[start + 8 : p].decode("utf-8", "replace")
    field_error = parameter_error = None
    for ptype, ps, pe in _params(b, p, end):
        if ptype == P_FIELD_ERROR and pe - ps >= 8:
            field_error = _PHDR.unpack_from(b, ps + 4)
        elif ptype == P_PARAMETER_ERROR and pe - ps >= 8:
            parameter_error = _PHDR.unpack_from(b, ps + 4)
    return Status(code, description, field_error, parameter_error)


def _capabilities(b: bytes, start: int, end: int) -> Capabilities:
    if end - start < 18:
        raise _BadError("sanity")
    max_antennas = _U16.unpack_from(b, start + 4)[0]
    manufacturer, model = struct.unpack_from(">II", b, start + 8)
    count = _U16.unpack_from(b, start + 16)[0]
    if start + 18 + count > end:
        raise _BadError("sanity")
    firmware = b[start + 18 : start + 18 + count].decode("utf-8", "replace")
    return Capabilities(max_antennas, manufacturer, model, firmware)


def _tag_report(b: bytes, start: int, end: int, message_id: int) -> TagReport:
    """One ``TagReportData`` (``b[start:end]``, TLV header included), in a single pass."""
    epc: str | None = None
    antenna = rssi = channel = first_seen = last_seen = count = rospec_id = pc = None
    p = start + 4
    sizes = TV_SIZES
    while p < end:
        first = b[p]
        if first & 0x80:
            ptype = first & 0x7F
            size = sizes.get(ptype)
            if size is None or p + size > end:
                raise _BadError("sanity")
            if ptype == TV_EPC_96:
                epc = b[p + 1 : p + 13].hex().upper()
            elif ptype == TV_ANTENNA_ID:
                antenna = b[p + 1] << 8 | b[p + 2]
            elif ptype == TV_PEAK_RSSI:
                rssi = _INT8[b[p + 1]]
            elif ptype == TV_FIRST_SEEN_UTC:
                first_seen = _U64.unpack_from(b, p + 1)[0]
            elif ptype == TV_LAST_SEEN_UTC:
                last_seen = _U64.unpack_from(b, p + 1)[0]
            elif ptype == TV_CHANNEL_INDEX:
                channel = b[p + 1] << 8 | b[p + 2]
            elif ptype == TV_TAG_SEEN_COUNT:
                count = b[p + 1] << 8 | b[p + 2]
            elif ptype == TV_ROSPEC_ID:
                rospec_id = _U32.unpack_from(b, p + 1)[0]
            elif ptype == TV_C1G2_PC:
                pc = b[p + 1] << 8 | b[p + 2]
            p += size
            continue
        if p + 4 > end:
            raise _BadError("sanity")
        head = first << 8 | b[p + 1]
        plen = b[p + 2] << 8 | b[p + 3]
        if head >> 10 or plen < 4 or p + plen > end:
            raise _BadError("sanity")
        if head == P_EPC_DATA:
            if plen < 6 or plen != 6 + ((b[p + 4] << 8 | b[p + 5]) + 7) // 8:
                raise _BadError("sanity")
            epc = b[p + 6 : p + plen].hex().upper()
        p += plen
    if epc is None:
        raise _BadError("sanity")
    return TagReport(
        message_id, epc, antenna, rssi, channel, first_seen, last_seen, count, rospec_id, pc
    )


_INT8 = tuple(range(128)) + tuple(range(-128, 0))


def _reader_event(b: bytes, start: int, end: int, message_id: int) -> ReaderEvent:
    data = [
        (ps, pe) for t, ps, pe in _params(b, start, end) if t == P_READER_EVENT_NOTIFICATION_DATA
    ]
    if len(data) != 1:
        raise _BadError("sanity")
    ds, de = data[0]
    timestamp: int | None = None
    events: list[str] = []
    connection: int | None = None
    for ptype, ps, pe in _params(b, ds + 4, de):
        if ptype == P_UTC_TIMESTAMP:
            if pe - ps != 12:
                raise _BadError("sanity")
            timestamp = _U64.unpack_from(b, ps + 4)[0]
        elif ptype == P_CONNECTION_ATTEMPT_EVENT:
            if pe - ps < 6:
                raise _BadError("sanity")
            connection = _U16.unpack_from(b, ps + 4)[0]
            events.append(EVENT_NAMES[ptype])
        elif ptype in EVENT_NAMES:
            events.append(EVENT_NAMES[ptype])
        elif ptype == P_CUSTOM:
            events.append("custom")
    return ReaderEvent(message_id, timestamp, tuple(events), connection)


def _body(b: bytes, p: int, end: int, out: list[Decoded]) -> int:
    """Decode the complete message ``b[p:end]`` into ``out``; return records added.

    Raises :class:`_BadError`. Appends nothing on failure.
    """
    head, _, message_id = _HDR.unpack_from(b, p)
    version = (head >> 10) & 7
    mtype = head & 0x3FF
    if version not in (VERSION_1_0_1, VERSION_1_1):
        raise _BadError("sanity")
    start = p + HEADER_LEN
    fixed = _FIXED_BODY.get(mtype, 0)
    if end - start < fixed:
        raise _BadError("length")
    if mtype == CUSTOM_MESSAGE:
        out.append(Message(mtype, message_id, version, b[start:end]))
        return 1
    params = _params(b, start + fixed, end)
    if mtype == RO_ACCESS_REPORT:
        tags = [
            _tag_report(b, ps, pe, message_id) for t, ps, pe in params if t == P_TAG_REPORT_DATA
        ]
        if tags:
            out.extend(tags)
            return len(tags)
    elif mtype in _RESPONSES:
        status: Status | None = None
        caps: Capabilities | None = None
        for t, ps, pe in params:
            if t == P_LLRP_STATUS and status is None:
                status = _status(b, ps, pe)
            elif t == P_GENERAL_DEVICE_CAPABILITIES:
                caps = _capabilities(b, ps, pe)
        if status is None:
            raise _BadError("sanity")
        out.append(Response(mtype, message_id, status, caps))
        return 1
    elif mtype == KEEPALIVE:
        out.append(Keepalive(message_id))
        return 1
    elif mtype == READER_EVENT_NOTIFICATION:
        out.append(_reader_event(b, start, end, message_id))
        return 1
    out.append(Message(mtype, message_id, version, b[start:end]))
    return 1


def plausible_header(b: bytes, p: int, max_length: int = MAX_LENGTH) -> bool:
    """Whether the 10 bytes at ``p`` can start a message (see the module docstring)."""
    head, length, _ = _HDR.unpack_from(b, p)
    return not head >> 13 and (head & 0x3FF) in MESSAGE_NAMES and 10 <= length <= max_length


def decode_message(data: bytes) -> list[Decoded]:
    """Decode exactly one whole message (its records, or one failure). Never raises."""
    data = bytes(data)
    if len(data) < HEADER_LEN or not plausible_header(data, 0, max(len(data), HEADER_LEN)):
        return [DecodeFailure("garbage", data[:256])]
    if _U32.unpack_from(data, 2)[0] != len(data):
        return [DecodeFailure("length", data)]
    out: list[Decoded] = []
    try:
        _body(data, 0, len(data), out)
    except _BadError as exc:
        return [DecodeFailure(exc.reason, data)]
    return out


class StreamDecoder(StreamDecoderBase[Record]):
    """Decode an LLRP byte stream chunk by chunk, resynchronising after bad bytes.

    ``feed`` returns the records completed by the new bytes; ``flush`` ends the input.
    ``counters["ok"]`` counts good messages (an ``RO_ACCESS_REPORT`` of five tags is one
    ``ok`` and five records). Never raises. ``max_length`` is the longest ``Length`` a
    header may claim.
    """

    __slots__ = ("_max_length",)

    def __init__(self, *, max_length: int = MAX_LENGTH) -> None:
        super().__init__()
        self._max_length = min(max(int(max_length), HEADER_LEN), 0xFFFFFFFF)

    def _partial_ok(self, buf: bytes, p: int) -> bool:
        """Whether the fewer than 10 bytes at ``p`` can still begin a header."""
        n = len(buf) - p
        if buf[p] >> 5:
            return False
        if n >= 2 and ((buf[p] << 8 | buf[p + 1]) & 0x3FF) not in MESSAGE_NAMES:
            return False
        if n >= 6:
            length = _U32.unpack_from(buf, p + 2)[0]
            if not 10 <= length <= self._max_length:
                return False
        elif n > 2:
            # the length's leading bytes must still allow a value in range
            prefix = int.from_bytes(buf[p + 2 : p + n], "big")
            shift = 8 * (6 - n)
            if prefix << shift > self._max_length:
                return False
        return True

    def _good_at(self, buf: bytes, q: int, final: bool) -> bool | None:
        """Whether a plausible header at ``q`` starts a complete good message.

        None: more bytes are needed to tell.
        """
        n = len(buf)
        if q + HEADER_LEN > n:
            if not final and self._partial_ok(buf, q):
                return None
            return False
        if not plausible_header(buf, q, self._max_length):
            return False
        end = q + _U32.unpack_from(buf, q + 2)[0]
        if end > n:
            return None if not final else False
        try:
            _body(buf, q, end, [])
        except _BadError:
            return False
        return True

    def _hidden(self, buf: bytes, start: int, stop: int, final: bool) -> int | None:
        """First position in ``buf[start:stop]`` starting a good message; -1: need more."""
        for q in range(start, stop):
            good = self._good_at(buf, q, final)
            if good is None:
                return -1
            if good:
                return q
        return None

    def _run(self, buf: bytes, out: list[Decoded], final: bool) -> int:
        n = len(buf)
        pos = 0
        p = 0
        maxlen = self._max_length
        known = MESSAGE_NAMES
        unpack = _HDR.unpack_from
        ok = 0
        try:
            while p < n:
                if p + HEADER_LEN > n:
                    if self._partial_ok(buf, p):
                        if p > pos:
                            self._skip(buf[pos:p])
                        if not final:
                            return p
                        self._emit_garbage(out)
                        self._fail(out, "truncated", buf[p:])
                        return n
                    p += 1
                    continue
                head, length, _ = unpack(buf, p)
                if head >> 13 or (head & 0x3FF) not in known or not 10 <= length <= maxlen:
                    p += 1
                    continue
                if p > pos:
                    self._skip(buf[pos:p])
                if self._garbage_len:
                    self._emit_garbage(out)
                end = p + length
                if end > n:
                    if not final:
                        return p
                    h = self._hidden(buf, p + 1, n, final)
                    if h is None:
                        self._fail(out, "truncated", buf[p:])
                        return n
                    self._fail(out, "truncated", buf[p:h])
                    pos = p = h
                    continue
                try:
                    _body(buf, p, end, out)
                except _BadError as exc:
                    h = self._hidden(buf, p + 1, end, final)
                    if h == -1:
                        return p
                    if h is None:
                        self._fail(out, exc.reason, buf[p:end])
                        pos = p = end
                    else:
                        self._fail(out, "truncated", buf[p:h])
                        pos = p = h
                    continue
                ok += 1
                pos = p = end
            if pos < n:
                self._skip(buf[pos:])
            return n
        finally:
            self.counters["ok"] += ok


def decode_stream(data: bytes) -> list[Decoded]:
    """Decode a complete byte string (feed plus flush)."""
    dec = StreamDecoder()
    return dec.feed(data) + dec.flush()


# --- encoding --------------------------------------------------------------------------


def _int(name: str, value: int, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProtocolError(f"{name} must be an integer {low}-{high}, got {value!r}")
    return value


def encode_message(
    msg_type: int, message_id: int, body: bytes = b"", *, version: int = VERSION_1_0_1
) -> bytes:
    """A whole message: header (version, type, length, id) and ``body``."""
    _int("msg_type", msg_type, 0, 0x3FF)
    _int("message_id", message_id, 0, 0xFFFFFFFF)
    _int("version", version, 0, 7)
    return _HDR.pack(version << 10 | msg_type, HEADER_LEN + len(body), message_id) + bytes(body)


def tlv(ptype: int, body: bytes = b"") -> bytes:
    """A TLV parameter of type ``ptype`` (128-1023) holding ``body``."""
    _int("parameter type", ptype, 128, 0x3FF)
    if len(body) + 4 > 0xFFFF:
        raise ProtocolError(f"parameter {ptype} of {len(body) + 4} bytes is too long")
    return _PHDR.pack(ptype, len(body) + 4) + body


def tv(ptype: int, value: bytes) -> bytes:
    """A TV parameter of type ``ptype`` (1-127); ``value`` must have its fixed size."""
    size = TV_SIZES.get(ptype)
    if size is None or len(value) + 1 != size:
        raise ProtocolError(f"TV parameter {ptype} cannot hold {len(value)} bytes")
    return bytes((0x80 | ptype,)) + value


def llrp_status(code: int = M_SUCCESS, description: str = "") -> bytes:
    """An ``LLRPStatus`` parameter."""
    text = description.encode("utf-8")
    return tlv(P_LLRP_STATUS, _PHDR.pack(_int("code", code, 0, 0xFFFF), len(text)) + text)


def get_reader_capabilities(message_id: int, requested: int = 0) -> bytes:
    """``GET_READER_CAPABILITIES``; ``requested`` 0 = all, 1 = general device caps."""
    return encode_message(
        GET_READER_CAPABILITIES, message_id, bytes((_int("requested", requested, 0, 4),))
    )


DEFAULT_EVENTS: tuple[tuple[int, bool], ...] = (
    (0, False),  # upon hopping to next channel
    (1, False),  # GPI event
    (2, True),  # ROSpec event
    (3, True),  # report buffer fill warning
    (4, True),  # reader exception
    (5, False),  # RF survey
    (6, False),  # AISpec event
    (7, False),  # AISpec event with details
    (8, True),  # antenna event
)
"""``(EventType, NotificationState)`` pairs :func:`set_reader_config` asks for."""


def set_reader_config(
    message_id: int,
    *,
    keepalive_ms: int | None,
    events: Sequence[tuple[int, bool]] | None = DEFAULT_EVENTS,
    hold_events_on_reconnect: bool | None = False,
) -> bytes:
    """``SET_READER_CONFIG`` with ResetToFactoryDefault false.

    ``keepalive_ms``: periodic ``KeepaliveSpec`` (None sends no KeepaliveSpec, 0 turns
    keep-alives off); ``events``: a ``ReaderEventNotificationSpec``;
    ``hold_events_on_reconnect``: an ``EventsAndReports`` parameter.
    """
    body = b"\x00"
    if events is not None:
        states = b"".join(
            tlv(
                P_EVENT_NOTIFICATION_STATE,
                _U16.pack(_int("event type", kind, 0, 0xFFFF)) + (b"\x80" if on else b"\x00"),
            )
            for kind, on in events
        )
        body += tlv(P_READER_EVENT_NOTIFICATION_SPEC, states)
    if keepalive_ms is not None:
        _int("keepalive_ms", keepalive_ms, 0, 0xFFFFFFFF)
        body += tlv(P_KEEPALIVE_SPEC, bytes((1 if keepalive_ms else 0,)) + _U32.pack(keepalive_ms))
    if hold_events_on_reconnect is not None:
        body += tlv(P_EVENTS_AND_REPORTS, b"\x80" if hold_events_on_reconnect else b"\x00")
    return encode_message(SET_READER_CONFIG, message_id, body)


def _rospec_id_message(msg_type: int, message_id: int, rospec_id: int) -> bytes:
    return encode_message(
        msg_type, message_id, _U32.pack(_int("rospec_id", rospec_id, 0, 2**32 - 1))
    )


def delete_rospec(message_id: int, rospec_id: int = 0) -> bytes:
    """``DELETE_ROSPEC``; ROSpecID 0 deletes every ROSpec."""
    return _rospec_id_message(DELETE_ROSPEC, message_id, rospec_id)


def enable_rospec(message_id: int, rospec_id: int) -> bytes:
    return _rospec_id_message(ENABLE_ROSPEC, message_id, rospec_id)


def start_rospec(message_id: int, rospec_id: int) -> bytes:
    return _rospec_id_message(START_ROSPEC, message_id, rospec_id)


def stop_rospec(message_id: int, rospec_id: int) -> bytes:
    return _rospec_id_message(STOP_ROSPEC, message_id, rospec_id)


def keepalive_ack(message_id: int) -> bytes:
    """``KEEPALIVE_ACK``, echoing the keep-alive's message id."""
    return encode_message(KEEPALIVE_ACK, message_id)


def enable_events_and_reports(message_id: int) -> bytes:
    """``ENABLE_EVENTS_AND_REPORTS`` (type 64, no response)."""
    return encode_message(ENABLE_EVENTS_AND_REPORTS, message_id)


def close_connection(message_id: int) -> bytes:
    return encode_message(CLOSE_CONNECTION, message_id)


CONTENT_ANTENNA_ID = 0x1000
CONTENT_CHANNEL_INDEX = 0x0800
CONTENT_PEAK_RSSI = 0x0400
CONTENT_FIRST_SEEN = 0x0200
CONTENT_LAST_SEEN = 0x0100
CONTENT_TAG_SEEN_COUNT = 0x0080
CONTENT_ROSPEC_ID = 0x8000
DEFAULT_CONTENT = (
    CONTENT_ANTENNA_ID
    | CONTENT_CHANNEL_INDEX
    | CONTENT_PEAK_RSSI
    | CONTENT_FIRST_SEEN
    | CONTENT_LAST_SEEN
    | CONTENT_TAG_SEEN_COUNT
)
"""TagReportContentSelector bits: antenna, channel, peak RSSI, first/last seen, count."""


@dataclass(frozen=True, slots=True)
class RoSpecSettings:
    """What :func:`add_rospec` puts in its ROSpec."""

    rospec_id: int
    antennas: tuple[int, ...]
    duration_ms: int
    """AISpec duration stop trigger: a report at the end of every AISpec run."""
    start_immediately: bool = False
    """Start trigger immediate (True) or null, i.e. on ``START_ROSPEC`` (False)."""
    session: int | None = 1
    tag_population: int = 32
    mode_index: int | None = None
    tx_power_index: int | None = None
    content: int = DEFAULT_CONTENT
    report_n: int = 0


def _antenna_configuration(antenna: int, s: RoSpecSettings) -> bytes:
    body = _U16.pack(antenna)
    if s.tx_power_index is not None:
        body += tlv(P_RF_TRANSMITTER, struct.pack(">HHH", 1, 1, s.tx_power_index))
    command = b"\x00"
    if s.mode_index is not None:
        command += tlv(P_C1G2_RF_CONTROL, struct.pack(">HH", s.mode_index, 0))
    if s.session is not None:
        command += tlv(
            P_C1G2_SINGULATION_CONTROL,
            bytes((s.session << 6,)) + _U16.pack(s.tag_population) + _U32.pack(0),
        )
    body += tlv(P_C1G2_INVENTORY_COMMAND, command)
    return tlv(P_ANTENNA_CONFIGURATION, body)


def rospec(s: RoSpecSettings) -> bytes:
    """The ``ROSpec`` parameter (177) described in the module docstring."""
    _int("rospec_id", s.rospec_id, 1, 2**32 - 1)
    if not s.antennas or len(s.antennas) > 0xFFFF:
        raise ProtocolError("a ROSpec needs at least one antenna")
    for a in s.antennas:
        _int("antenna", a, 0, 0xFFFF)
    _int("duration_ms", s.duration_ms, 1, 2**32 - 1)
    if s.session is not None:
        _int("session", s.session, 0, 3)
    _int("tag_population", s.tag_population, 0, 0xFFFF)
    if s.mode_index is not None:
        _int("mode_index", s.mode_index, 0, 0xFFFF)
    if s.tx_power_index is not None:
        _int("tx_power_index", s.tx_power_index, 0, 0xFFFF)
    _int("content", s.content, 0, 0xFFFF)
    _int("report_n", s.report_n, 0, 0xFFFF)
    boundary = tlv(
        P_RO_BOUNDARY_SPEC,
        tlv(P_ROSPEC_START_TRIGGER, b"\x01" if s.start_immediately else b"\x00")
        + tlv(P_ROSPEC_STOP_TRIGGER, b"\x00" + _U32.pack(0)),
    )
    configure = s.session is not None or s.mode_index is not None or s.tx_power_index is not None
    inventory = tlv(
        P_INVENTORY_PARAMETER_SPEC,
        _U16.pack(1)
        + bytes((PROTOCOL_EPC_C1G2,))
        + (b"".join(_antenna_configuration(a, s) for a in s.antennas) if configure else b""),
    )
    aispec = tlv(
        P_AISPEC,
        _U16.pack(len(s.antennas))
        + b"".join(_U16.pack(a) for a in s.antennas)
        + tlv(P_AISPEC_STOP_TRIGGER, b"\x01" + _U32.pack(s.duration_ms))
        + inventory,
    )
    report = tlv(
        P_RO_REPORT_SPEC,
        b"\x01" + _U16.pack(s.report_n) + tlv(P_TAG_REPORT_CONTENT_SELECTOR, _U16.pack(s.content)),
    )
    return tlv(P_ROSPEC, _U32.pack(s.rospec_id) + b"\x00\x00" + boundary + aispec + report)


def add_rospec(message_id: int, settings: RoSpecSettings) -> bytes:
    """``ADD_ROSPEC`` holding :func:`rospec`."""
    return encode_message(ADD_ROSPEC, message_id, rospec(settings))


# --- JSON form -------------------------------------------------------------------------


def _status_dict(status: Status) -> dict[str, Any]:
    d: dict[str, Any] = {
        "status": status.name,
        "status_code": status.code,
        "description": status.description,
    }
    if status.field_error is not None:
        d["field_error"] = list(status.field_error)
    if status.parameter_error is not None:
        d["parameter_error"] = list(status.parameter_error)
    return d


def record_to_dict(rec: Decoded) -> dict[str, Any]:
    """The JSON form used by the CLI and the test vectors (absent fields are left out)."""
    if isinstance(rec, TagReport):
        d: dict[str, Any] = {"type": "tag", "message_id": rec.message_id, "epc": rec.epc}
        for key in (
            "antenna",
            "rssi_dbm",
            "channel_index",
            "first_seen_us",
            "last_seen_us",
            "seen_count",
            "rospec_id",
        ):
            value = getattr(rec, key)
            if value is not None:
                d[key] = value
        if rec.pc is not None:
            d["pc"] = f"{rec.pc:04X}"
        return d
    if isinstance(rec, Response):
        d = {"type": "response", "message": rec.name, "message_id": rec.message_id}
        d.update(_status_dict(rec.status))
        caps = rec.capabilities
        if caps is not None:
            d["capabilities"] = {
                "max_antennas": caps.max_antennas,
                "manufacturer": caps.manufacturer,
                "model": caps.model,
                "firmware": caps.firmware,
            }
        return d
    if isinstance(rec, Keepalive):
        return {"type": "keepalive", "message_id": rec.message_id}
    if isinstance(rec, ReaderEvent):
        d = {"type": "event", "message_id": rec.message_id, "events": list(rec.events)}
        if rec.timestamp_us is not None:
            d["timestamp_us"] = rec.timestamp_us
        if rec.connection_status is not None:
            d["connection_status"] = CONNECTION_STATUS_NAMES.get(
                rec.connection_status, str(rec.connection_status)
            )
        return d
    if isinstance(rec, Message):
        return {
            "type": "message",
            "message": rec.name,
            "message_id": rec.message_id,
            "version": rec.version,
            "body": rec.body.hex().upper(),
        }
    return failure_to_dict(rec)


def tag_of(rec: Decoded) -> TagView | None:
    """The tag a record holds (tag reports only)."""
    if isinstance(rec, TagReport):
        return TagView(rec.epc, rec.antenna, None if rec.rssi_dbm is None else float(rec.rssi_dbm))
    return None


PROTOCOL = ProtocolInfo(
    name="llrp",
    title="EPCglobal LLRP 1.0.1/1.1 over TCP (fixed UHF readers)",
    spec="EPCglobal Low Level Reader Protocol 1.0.1 and 1.1 (binary encoding, section 15); "
    "see this module's docstring",
    models=(
        "Impinj Speedway R120/R220/R420, xArray, R700 (LLRP interface)",
        "Zebra FX7500, FX9600, ATR7000",
        "any LLRP-conformant fixed reader",
    ),
    default_baud=None,
    typical_frame_bytes=70,
    reports=("epc", "antenna", "rssi", "channel", "first/last seen", "seen count"),
    new_decoder=StreamDecoder,
    decode_stream=decode_stream,
    record_to_dict=record_to_dict,
    tags_of=tag_of,
)
