"""The simulator: a synthetic population run through the whole loop on the settable clock."""
