"""The run-directory contract: file declarations (`files`), the manifest (`manifest`), the metrics
schema (`metrics`), corpus roots and audio paths (`locate`), and `rundir.RunDir`, through which
every stage writes and every reader reads."""
