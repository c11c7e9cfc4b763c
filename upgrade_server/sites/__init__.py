"""An organisation's sites: where its devices stand, with the region and time
zone their tickets' deadlines are counted in."""
