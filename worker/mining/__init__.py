"""Hard-example mining and error analysis: pure matching maths (matching, difficulty, breakdown)
and the I/O around it (prediction capture, outputs, previews, the hard-example dataset)."""
