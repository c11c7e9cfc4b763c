"""Working days: the official calendar, staff exceptions, which calendar a deadline used."""
