"""A made-up store the mocked tests talk to, and a clock that never waits."""

from __future__ import annotations

from dataclasses import dataclass, field

STORE_URL = "https://shop.example.com/mm5/json.mvc"
TOKEN = "0f90f77b58ca98836eba3d50f526f523"
KEY = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA"  # unpadded, as Miva shows it


@dataclass
class FakeClock:
    """A clock whose sleep advances time instead of waiting."""

    now: float = 1_700_000_000.0
    sleeps: list[float] = field(default_factory=list)

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
