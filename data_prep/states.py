"""The state every row of a build ends in (exactly one once the selection is done).

Its own module so that build.py (which sets the states) and card.py (which reports them) both
import it, and neither imports the other.
"""

from __future__ import annotations

PENDING, REJECTED, DECONTAMINATED, DUPLICATE, NEAR_DUPLICATE, SAMPLED_OUT, TRAIN, VAL = range(8)
STATE_NAMES = {
    REJECTED: "rejected",
    DECONTAMINATED: "decontaminated",
    DUPLICATE: "duplicates_exact",
    NEAR_DUPLICATE: "duplicates_near",
    SAMPLED_OUT: "sampled_out",
    TRAIN: "train",
    VAL: "val",
}
