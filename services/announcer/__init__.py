"""announcer: system announcements, published now or at their start time, until they expire."""
