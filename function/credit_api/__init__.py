"""Loan-default inference: the code deployed as the Lambda function (``CodeUri: function/``).

Imports only numpy, onnxruntime, pydantic, FastAPI, Mangum, Powertools and boto3:
never scikit-learn, pandas or ``training`` (the Lambda bundle has none of them).
"""
