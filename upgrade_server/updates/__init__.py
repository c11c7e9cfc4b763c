"""What a device should install now, the bytes, and how the install went."""
