"""People and machines that call the API: users, roles, API and device tokens."""
