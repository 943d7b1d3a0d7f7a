"""Where a stream's audio comes from: files decoded block by block (decode.py) and replayed (replay.py), or a
sound device (microphone.py). A source yields AudioFrame messages and one EndOfStream."""
