// Package kms is the AWS KMS side of a custom key store on the simulated
// cluster (docs/design.md, "The KMS custom key store"): the key stores
// and KMS keys of one account and Region, the connection state machine,
// and the KMS keys whose material is an AES key in the cluster. It talks
// to the cluster only through the engine, as the AWS account
// (cloudhsm:DescribeClusters) and as kmsuser, as KMS does.
package kms

import "fmt"

// Error is a KMS service exception: the AWS CLI prints it as
// "An error occurred (Code) when calling the Operation operation: Message".
type Error struct {
	Code      string // the exception's name, such as CustomKeyStoreInvalidStateException
	Operation string // the API operation, such as ConnectCustomKeyStore
	Message   string
}

func (e *Error) Error() string {
	return fmt.Sprintf("An error occurred (%s) when calling the %s operation: %s", e.Code, e.Operation, e.Message)
}

// The exceptions hsmkit raises, by their AWS names.
const (
	ExcInvalidState         = "CustomKeyStoreInvalidStateException"
	ExcNotFound             = "CustomKeyStoreNotFoundException"
	ExcNameInUse            = "CustomKeyStoreNameInUseException"
	ExcHasCMKs              = "CustomKeyStoreHasCMKsException"
	ExcClusterNotFound      = "CloudHsmClusterNotFoundException"
	ExcClusterNotActive     = "CloudHsmClusterNotActiveException"
	ExcClusterInUse         = "CloudHsmClusterInUseException"
	ExcClusterInvalidConfig = "CloudHsmClusterInvalidConfigurationException"
	ExcClusterNotRelated    = "CloudHsmClusterNotRelatedException"
	ExcIncorrectTrustAnchor = "IncorrectTrustAnchorException"
	ExcLimitExceeded        = "LimitExceededException"
	ExcKMSInvalidState      = "KMSInvalidStateException"
	ExcKeyNotFound          = "NotFoundException"
	ExcInvalidCiphertext    = "InvalidCiphertextException"
	ExcIncorrectKey         = "IncorrectKeyException"
	ExcValidation           = "ValidationException"
	ExcInvalidArn           = "InvalidArnException"
	ExcUnsupported          = "UnsupportedOperationException"
	ExcInternal             = "KMSInternalException"
	ExcDependencyTimeout    = "DependencyTimeoutException"
)

func fail(code, op, format string, a ...any) *Error {
	return &Error{Code: code, Operation: op, Message: fmt.Sprintf(format, a...)}
}
