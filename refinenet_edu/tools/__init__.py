"""Tools around the course: executing and checking notebooks, hosted launch links, the published site."""
