"""RuleGen: rules suggested, validated and backtested from the event and verdict history."""
