from connector_telemetry.agent.cli import main

raise SystemExit(main())
