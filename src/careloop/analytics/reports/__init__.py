"""Monthly department reports (PDF) and their e-mail schedule."""
