"""Validated configuration of readers: one model per reader type, a union over them."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from tagtrail.events import Name


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AntennaConfig(_Strict):
    """One antenna of a reader and the zone it covers."""

    port: int = Field(ge=1, le=8, description="Antenna port on the reader, 1-based.")
    zone: Name = Field(description="Zone this antenna's reads place an item in.")


ReaderId = Annotated[Name, Field(description="Name of this reader in events and status.")]
SerialPort = Annotated[str, Field(min_length=1, description="Serial device, e.g. /dev/ttyUSB0.")]
ReconnectInitialS = Annotated[
    float, Field(gt=0, le=60, description="First wait before reopening a lost port.")
]
ReconnectMaxS = Annotated[
    float, Field(gt=0, le=600, description="Longest wait between reopen attempts.")
]


def _ports_once(antennas: list[AntennaConfig], highest: int, reader: str) -> list[AntennaConfig]:
    ports = [a.port for a in antennas]
    if len(set(ports)) != len(ports):
        raise ValueError("each antenna port may appear once")
    if any(p > highest for p in ports):
        raise ValueError(f"{reader} readers have antenna ports 1-{highest}")
    return antennas


class _SerialReader(_Strict):
    """What every serial reader's config checks: reconnect waits in order."""

    @model_validator(mode="after")
    def _check_reconnect(self) -> Self:
        initial = float(getattr(self, "reconnect_initial_s"))  # noqa: B009 - set by subclasses
        if float(getattr(self, "reconnect_max_s")) < initial:  # noqa: B009
            raise ValueError("reconnect_max_s must be at least reconnect_initial_s")
        return self


class _OneZone(_SerialReader):
    """A reader with one read point (a coil, a module's antenna, a scanner, a camera)
    covering its ``zone``, reported as antenna 1."""

    @property
    def antennas(self) -> list[AntennaConfig]:
        """The one read point as antenna 1, covering ``zone``."""
        return [AntennaConfig(port=1, zone=getattr(self, "zone"))]  # noqa: B009 - subclasses

    def zone_of(self, antenna: int) -> str | None:
        return str(getattr(self, "zone")) if antenna == 1 else None  # noqa: B009


class _Antennas(_SerialReader):
    """A reader with several antennas, each covering a zone."""

    def zone_of(self, antenna: int) -> str | None:
        for a in getattr(self, "antennas"):  # noqa: B009 - set by subclasses
            if a.port == antenna:
                return str(a.zone)
        return None


class R2000ReaderConfig(_Antennas):
    """A UHF reader speaking the R2000 serial protocol (0xA0 frames)."""

    type: Literal["r2000"] = Field(description="Reader driver: 'r2000'.")
    id: ReaderId
    port: SerialPort
    baudrate: Literal[9600, 19200, 38400, 57600, 115200] = Field(
        default=115200, description="Serial speed; R2000 modules default to 115200."
    )
    address: int = Field(
        default=1, ge=0, le=255, description="Reader address byte (0xFF broadcasts)."
    )
    antennas: list[AntennaConfig] = Field(
        min_length=1, description="Antennas to inventory in turn, each mapped to a zone."
    )
    repeat: int = Field(
        default=1, ge=1, le=255, description="Inventory repeat count per round (0x89 'Repeat')."
    )
    round_timeout_s: float = Field(
        default=2.0, gt=0, le=60, description="Give up on a round with no end frame after this."
    )
    reconnect_initial_s: ReconnectInitialS = 0.5
    reconnect_max_s: ReconnectMaxS = 30.0

    @field_validator("antennas")
    @classmethod
    def _check_antennas(cls, antennas: list[AntennaConfig]) -> list[AntennaConfig]:
        return _ports_once(antennas, 4, "R2000")


class EM4100ReaderConfig(_OneZone):
    """A 125 kHz EM4100 reader pushing ASCII frames (RDM6300, ID-12/ID-20 in ASCII mode).

    These readers take no commands and are silent while no card is in the field, so the
    driver can only report one going offline when its port fails or disappears.
    """

    type: Literal["em4100"] = Field(description="Reader driver: 'em4100'.")
    id: ReaderId
    port: str = Field(
        min_length=1,
        description="Serial device, e.g. /dev/ttyUSB0. The reader is silent without a card, "
        "so it is reported offline only when this port fails or disappears.",
    )
    baudrate: Literal[2400, 4800, 9600, 19200, 38400, 57600, 115200] = Field(
        default=9600, description="Serial speed; RDM6300 and ID-12/ID-20 send at 9600."
    )
    zone: Name = Field(description="Zone this reader's reads place a card in (one coil).")
    reconnect_initial_s: ReconnectInitialS = 0.5
    reconnect_max_s: ReconnectMaxS = 30.0


class M100ReaderConfig(_OneZone):
    """An Impinj E710 / M100 / QM100-class UHF module (BB..7E frames), one antenna."""

    type: Literal["m100"] = Field(description="Reader driver: 'm100'.")
    id: ReaderId
    port: SerialPort
    baudrate: Literal[9600, 19200, 38400, 57600, 115200] = Field(
        default=115200, description="Serial speed; these modules default to 115200."
    )
    zone: Name = Field(description="Zone this module's reads place an item in.")
    poll_count: int = Field(
        default=100,
        ge=1,
        le=65535,
        description="Inventory rounds per multiple-poll command (0x27) before it is re-sent.",
    )
    round_timeout_s: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="Give up on an unanswered command after this; also the quiet gap that "
        "ends a multiple-poll run (the module sends something every round), seconds.",
    )
    reconnect_initial_s: ReconnectInitialS = 0.5
    reconnect_max_s: ReconnectMaxS = 30.0


class ChafonReaderConfig(_Antennas):
    """A Chafon UHFReader18/UHFReader288-protocol reader (CF-RU5102, CF-RU6402, CF-MU904 ...)."""

    type: Literal["chafon"] = Field(description="Reader driver: 'chafon'.")
    id: ReaderId
    port: SerialPort
    baudrate: Literal[9600, 19200, 38400, 57600, 115200] = Field(
        default=57600, description="Serial speed; these readers default to 57600."
    )
    address: int = Field(
        default=0xFF, ge=0, le=255, description="Reader address byte (0xFF broadcasts)."
    )
    layout: Literal["288", "18"] = Field(
        default="288",
        description="Protocol generation: '288' (UHFReader288: per-antenna inventory with RSSI) "
        "or '18' (UHFReader18: no antenna or RSSI in replies, one antenna).",
    )
    antennas: list[AntennaConfig] = Field(
        min_length=1, description="Antennas to inventory in turn, each mapped to a zone."
    )
    scan_time: int = Field(
        default=10, ge=1, le=255, description="Inventory scan time per round, in 100 ms units."
    )
    q: int = Field(default=4, ge=0, le=15, description="Gen2 Q value of an inventory round.")
    session: Literal[0, 1, 2, 3] = Field(default=0, description="Gen2 session of inventory.")
    round_timeout_s: float = Field(
        default=3.0, gt=0, le=60, description="Give up on an unanswered command after this."
    )
    reconnect_initial_s: ReconnectInitialS = 0.5
    reconnect_max_s: ReconnectMaxS = 30.0

    @field_validator("antennas")
    @classmethod
    def _check_antennas(cls, antennas: list[AntennaConfig]) -> list[AntennaConfig]:
        return _ports_once(antennas, 8, "Chafon")

    @model_validator(mode="after")
    def _check(self) -> ChafonReaderConfig:
        if self.round_timeout_s <= self.scan_time / 10:
            raise ValueError(
                "round_timeout_s must exceed scan_time (100 ms units): the reader may use "
                "its whole scan time before it answers"
            )
        if self.layout == "18" and [a.port for a in self.antennas] != [1]:
            raise ValueError("antennas: UHFReader18 readers have one antenna, port 1")
        return self


class MercuryReaderConfig(_Antennas):
    """A ThingMagic/JADAK Mercury module (M6e, M7e, Nano, Micro) in continuous reading."""

    type: Literal["mercury"] = Field(description="Reader driver: 'mercury'.")
    id: ReaderId
    port: SerialPort
    baudrate: Literal[9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600] = Field(
        default=115200, description="Serial speed; Mercury modules boot at 115200."
    )
    region: int = Field(
        default=0x01,
        ge=0,
        le=0xFF,
        description="Regulatory region code for 'set region' (0x97): 0x01 NA, 0x02 EU, "
        "0x08 EU3, 0x05 JP, 0x04 IN, 0x06 PRC, 0x09 KR2, 0x0B AU, 0x0C NZ, 0xFF open.",
    )
    read_power_cdbm: int = Field(
        default=2000, ge=0, le=3150, description="Read power in centi-dBm (2000 = 20 dBm)."
    )
    antennas: list[AntennaConfig] = Field(
        min_length=1, description="Antennas to read on, each mapped to a zone."
    )
    on_time_ms: int = Field(
        default=1000,
        ge=10,
        le=65535,
        description="Read-cycle on-time of continuous reading, milliseconds.",
    )
    silence_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="With continuous reading on, the module sends tags or keep-alives; "
        "nothing for this long means it is gone (reconnect), seconds.",
    )
    round_timeout_s: float = Field(
        default=2.0, gt=0, le=60, description="Give up on an unanswered command after this."
    )
    reconnect_initial_s: ReconnectInitialS = 0.5
    reconnect_max_s: ReconnectMaxS = 30.0

    @field_validator("antennas")
    @classmethod
    def _check_antennas(cls, antennas: list[AntennaConfig]) -> list[AntennaConfig]:
        return _ports_once(antennas, 4, "Mercury")


ScanSuffix = Literal["crlf", "cr", "lf", "tab"]


class _Scanner(_OneZone):
    """What every handheld scanner's config shares: one zone, GS1 parsing, repeat suppression."""

    zone: Name = Field(description="Zone a scan places the item in (the scanner's read point).")
    aim: bool = Field(
        default=True,
        description="Scans start with an AIM symbology identifier (']C1' ...) when the "
        "scanner sends one; turn off if it never does and data may start with ']'.",
    )
    gs_substitutes: list[str] = Field(
        default_factory=list,
        max_length=4,
        description="Printable stand-ins some scanners send for the GS (FNC1) separator, "
        "e.g. '<GS>' or '^'; replaced by GS before GS1 parsing.",
    )
    repeat_suppress_s: float = Field(
        default=2.0,
        ge=0,
        le=3600,
        description="The same identity scanned again in the same zone within this many "
        "seconds is counted, not reported again.",
    )


class AsciiScannerConfig(_Scanner):
    """A handheld barcode (or RFID) scanner sending one scan per line over a serial port
    (USB CDC-ACM ``/dev/ttyACM*`` or RS-232)."""

    type: Literal["ascii"] = Field(description="Reader driver: 'ascii'.")
    id: ReaderId
    port: SerialPort
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = Field(
        default=9600,
        description="Serial speed for RS-232 scanners; ignored by USB CDC-ACM devices.",
    )
    prefix: str = Field(
        default="",
        max_length=16,
        description="Text the scanner is set to send before each scan (often empty).",
    )
    suffix: ScanSuffix = Field(
        default="cr", description="Line end the scanner is set to send: crlf, cr, lf or tab."
    )
    reconnect_initial_s: ReconnectInitialS = 0.5
    reconnect_max_s: ReconnectMaxS = 30.0

    @field_validator("prefix")
    @classmethod
    def _check_prefix(cls, prefix: str) -> str:
        if not prefix.isprintable() or not prefix.isascii():
            raise ValueError("prefix must be printable ASCII")
        return prefix


class HidScannerConfig(_Scanner):
    """A USB HID keyboard-wedge scanner read through Linux evdev, grabbed exclusively so
    its keystrokes reach no other program."""

    type: Literal["hid"] = Field(description="Reader driver: 'hid'.")
    id: ReaderId
    device: str = Field(
        min_length=1,
        description="evdev device, best a stable path such as "
        "/dev/input/by-id/usb-<vendor>_<model>-event-kbd.",
    )
    grab: bool = Field(
        default=True,
        description="Grab the device exclusively (EVIOCGRAB) so scans do not type into "
        "other applications.",
    )
    suffix: Literal["enter", "tab"] = Field(
        default="enter", description="Key the scanner sends after each scan."
    )
    layout: Literal["us"] = Field(
        default="us", description="Keyboard layout the scanner emulates (set it to US)."
    )
    reconnect_initial_s: ReconnectInitialS = 0.5
    reconnect_max_s: ReconnectMaxS = 30.0

    @property
    def port(self) -> str:
        """The device path, under the name the shared driver machinery logs."""
        return self.device


class LlrpReaderConfig(_Antennas):
    """A fixed UHF reader speaking LLRP over TCP (Impinj Speedway/R700, Zebra FX7500/FX9600)."""

    type: Literal["llrp"] = Field(description="Reader driver: 'llrp'.")
    id: ReaderId
    host: str = Field(min_length=1, description="Reader host name or IP address.")
    port: int = Field(default=5084, ge=1, le=65535, description="LLRP TCP port (5084).")
    antennas: list[AntennaConfig] = Field(
        min_length=1, description="Antennas to inventory, each mapped to a zone."
    )
    session: Literal[0, 1, 2, 3] = Field(default=1, description="Gen2 session of inventory.")
    tag_population: int = Field(
        default=32, ge=1, le=65535, description="Expected tags in the field (Gen2 Q hint)."
    )
    mode_index: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="RF mode (UHFC1G2RFModeTable index) to use; null keeps the reader's.",
    )
    tx_power_index: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Transmit power table index for every antenna; null keeps the reader's.",
    )
    report_every_s: float = Field(
        default=0.2,
        gt=0,
        le=60,
        description="How often the reader reports tags it has seen (AISpec duration), s.",
    )
    keepalive_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Keep-alive period asked of the reader; three missed ones mean the "
        "link is gone (reconnect), seconds.",
    )
    connect_timeout_s: float = Field(
        default=5.0, gt=0, le=120, description="Give up on a connect or reply after this."
    )
    reconnect_initial_s: ReconnectInitialS = 0.5
    reconnect_max_s: ReconnectMaxS = 30.0

    @field_validator("antennas")
    @classmethod
    def _check_antennas(cls, antennas: list[AntennaConfig]) -> list[AntennaConfig]:
        return _ports_once(antennas, 8, "LLRP")


class R700ReaderConfig(_Antennas):
    """An Impinj R700 through its IoT device interface (HTTP REST + NDJSON stream)."""

    type: Literal["r700"] = Field(description="Reader driver: 'r700'.")
    id: ReaderId
    url: AnyHttpUrl = Field(description="Base URL of the reader, e.g. https://r700-1.local.")
    username: str = Field(default="root", min_length=1, description="HTTP basic-auth user.")
    password: SecretStr = Field(description="HTTP basic-auth password.")
    verify_tls: bool = Field(
        default=True, description="Check the reader's TLS certificate (https URLs)."
    )
    ca_file: str | None = Field(
        default=None, description="CA bundle to check the reader's certificate with."
    )
    antennas: list[AntennaConfig] = Field(
        min_length=1, description="Antennas to inventory, each mapped to a zone."
    )
    transmit_power_cdbm: int = Field(
        default=3000, ge=1000, le=3300, description="Transmit power, centi-dBm (3000 = 30 dBm)."
    )
    session: Literal[0, 1, 2, 3] = Field(default=1, description="Gen2 session of inventory.")
    rf_mode: int | None = Field(
        default=None, ge=0, le=65535, description="RF mode number; null keeps the default."
    )
    stream_silence_s: float = Field(
        default=75.0,
        gt=0,
        le=600,
        description="No line (tag or keep-alive) on the data stream for this long means the "
        "link is gone (reconnect), seconds. The reader sends a keep-alive after 30 s "
        "without data, so keep this well above 30.",
    )
    request_timeout_s: float = Field(
        default=10.0, gt=0, le=120, description="Give up on a REST request after this."
    )
    reconnect_initial_s: ReconnectInitialS = 0.5
    reconnect_max_s: ReconnectMaxS = 30.0

    @field_validator("antennas")
    @classmethod
    def _check_antennas(cls, antennas: list[AntennaConfig]) -> list[AntennaConfig]:
        return _ports_once(antennas, 4, "R700")


class CameraRegion(_Strict):
    """A region of interest, as fractions of the frame (0 = left/top, 1 = right/bottom)."""

    x: float = Field(ge=0, lt=1, description="Left edge, fraction of the frame width.")
    y: float = Field(ge=0, lt=1, description="Top edge, fraction of the frame height.")
    width: float = Field(gt=0, le=1, description="Width, fraction of the frame width.")
    height: float = Field(gt=0, le=1, description="Height, fraction of the frame height.")

    @model_validator(mode="after")
    def _inside(self) -> Self:
        if self.x + self.width > 1.0 + 1e-9 or self.y + self.height > 1.0 + 1e-9:
            raise ValueError(
                "the region must lie inside the frame (x + width <= 1, y + height <= 1)"
            )
        return self


CameraEngine = Literal["zxing", "pyzbar"]


def _default_engines() -> list[CameraEngine]:
    return ["zxing", "pyzbar"]


class CameraReaderConfig(_OneZone):
    """A camera reading barcodes (V4L2 device, RTSP/HTTP stream, video file or image folder)."""

    type: Literal["camera"] = Field(description="Reader driver: 'camera'.")
    id: ReaderId
    source: str = Field(
        min_length=1,
        description="What to open: a V4L2 device (/dev/video0, or its index '0'), an "
        "rtsp:// or http(s):// stream URL, a video file, or a folder of images.",
    )
    zone: Name = Field(description="Zone a symbol seen by this camera places the item in.")
    engines: list[CameraEngine] = Field(
        default_factory=_default_engines,
        min_length=1,
        description="Decoders to try, in order: zxing (zxing-cpp) and/or pyzbar (zbar).",
    )
    regions: list[CameraRegion] = Field(
        default_factory=list,
        description="Regions of interest to decode; empty means the whole frame.",
    )
    max_decode_fps: float = Field(
        default=15.0,
        gt=0,
        le=120,
        description="Most frames decoded per second; frames beyond it are dropped, never queued.",
    )
    motion_gating: bool = Field(
        default=True,
        description="Decode only frames with motion (or a symbol seen recently), so an idle "
        "scene costs little CPU.",
    )
    motion_threshold: float = Field(
        default=0.002,
        gt=0,
        le=1,
        description="Fraction of pixels that must change between frames to count as motion.",
    )
    idle_decode_s: float = Field(
        default=2.0,
        gt=0,
        le=3600,
        description="With motion gating on, still decode one frame this often, seconds.",
    )
    repeat_suppress_s: float = Field(
        default=2.0,
        ge=0,
        le=3600,
        description="The same identity seen again within this many seconds of its previous "
        "sighting is counted, not reported again (a label standing still in view is one read).",
    )
    read_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="No frame from a live source for this long means it is gone (reconnect).",
    )
    loop: bool = Field(
        default=False,
        description="Replay a video file or image folder from the start at its end (tests, "
        "demos); otherwise the reader goes offline at the end.",
    )
    folder_fps: float = Field(
        default=15.0,
        gt=0,
        le=120,
        description="Frames per second an image folder is played at (video files keep their own).",
    )
    confirm_frames: int = Field(
        default=2,
        ge=1,
        le=10,
        description="Frames a symbol must be decoded in before it is reported; 2 keeps a "
        "one-frame misread of a blurred label out of the events.",
    )
    gs_substitutes: list[str] = Field(
        default_factory=list,
        max_length=4,
        description="Printable stand-ins for the GS separator in decoded text (rarely needed).",
    )
    reconnect_initial_s: ReconnectInitialS = 0.5
    reconnect_max_s: ReconnectMaxS = 30.0

    @model_validator(mode="after")
    def _check(self) -> Self:
        if len(set(self.engines)) != len(self.engines):
            raise ValueError("engines: each engine may appear once")
        return self


ReaderConfig = Annotated[
    R2000ReaderConfig
    | EM4100ReaderConfig
    | M100ReaderConfig
    | ChafonReaderConfig
    | MercuryReaderConfig
    | AsciiScannerConfig
    | HidScannerConfig
    | LlrpReaderConfig
    | R700ReaderConfig
    | CameraReaderConfig,
    Field(discriminator="type"),
]
"""Union of every reader type; new drivers add their model here."""
