"""Tools around the course: executing and checking notebooks, releasing the graded assignments, the
benchmark harness, hosted launch links, the published site."""
