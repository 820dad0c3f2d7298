"""The canary source inside mailprobe: config -> runtime, shared by checks and serve."""
