from connector_telemetry.cli import main

raise SystemExit(main())
