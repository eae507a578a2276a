"""Answer: turn retrieved passages into a short, cited answer or a refusal. Stages in order:
``evidence`` (select and number sentences), ``policy`` (the one refusal policy, before and after
generation, and relevance calibration), ``prompt`` + ``generate`` (the small model), and
``binding`` (app-side citations verified against the shown sources; extractive answers)."""
