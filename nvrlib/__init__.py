"""Small pieces shared by the edge, the hub and the web app."""
