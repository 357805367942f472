"""The edge: capture cameras, burn in a time stamp, encode H.264 and push MPEG-TS to the hub."""
