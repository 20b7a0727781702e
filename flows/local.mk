# flows
