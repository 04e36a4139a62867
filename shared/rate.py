"""A token bucket: ``capacity`` actions at once, refilled at ``rate_per_s``. Pure (the clock is passed)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TokenBucket:
    capacity: float
    rate_per_s: float
    tokens: float
    updated_at: float

    @classmethod
    def full(cls, capacity: float, rate_per_s: float, now: float) -> TokenBucket:
        return cls(capacity=capacity, rate_per_s=rate_per_s, tokens=capacity, updated_at=now)

    def take(self, now: float) -> float:
        """Take one token: 0.0 if granted, else the seconds until one is available (nothing taken)."""
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.updated_at) * self.rate_per_s)
        self.updated_at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate_per_s

    def give_back(self) -> None:
        """Return a token taken for an action that did not happen (a refused request)."""
        self.tokens = min(self.capacity, self.tokens + 1.0)
