"""``emo-stream serve``: live calls over the network (Twilio Media Streams, the native WebSocket protocol)."""
