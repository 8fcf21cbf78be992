"""A/B experiments on reminder wording, channel, time and cadence, with randomised arms, a control
group, effect sizes with confidence intervals and stop rules."""
