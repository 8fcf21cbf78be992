"""Care plans: versioned plan templates, enrolment (by staff or by rule) and personalisation."""
