"""Send-time learning: each patient's reminder hour and channel chosen by Thompson sampling
within the allowed windows, against a fixed-time control group."""
