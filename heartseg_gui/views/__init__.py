"""Views: draw copies of the data and emit intents; they never write into mask arrays."""
