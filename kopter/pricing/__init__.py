"""The EC2 price list: AWS bulk offer files to Ec2Prices, and look-ups."""
