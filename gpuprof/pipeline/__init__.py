"""The one place that composes the stages: capture -> ingest -> align -> analyze.

Each function here runs the captures a command asks for, reads what they wrote with ingest,
puts the sources on one clock with align and hands analysis results to the CLI, which only
renders them. Capture modules return raw results and import no other stage.
"""
