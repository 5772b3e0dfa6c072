//! Turns raw protobuf requests into validated values, or says exactly what is wrong.

use flashsale::pb;

use crate::error::{CheckoutError, MAX_USER_ID_BYTES};
use crate::store::book::MAX_REQUEST_ID_BYTES;
use crate::store::{Order, Strategy};

/// Checks a purchase request: a non-empty `user_id` of at most 128 bytes, a quantity of at
/// most `max_quantity` (0 means 1) and a `request_id` of at most 128 bytes (empty: none).
/// The round is the store's to check.
pub fn order(req: &pb::PurchaseRequest, max_quantity: u32) -> Result<Order<'_>, CheckoutError> {
    if req.user_id.is_empty() {
        return Err(CheckoutError::MissingUserId);
    }
    if req.user_id.len() > MAX_USER_ID_BYTES {
        return Err(CheckoutError::UserIdTooLong(req.user_id.len()));
    }
    if req.request_id.len() > MAX_REQUEST_ID_BYTES {
        return Err(CheckoutError::RequestIdTooLong(req.request_id.len()));
    }
    let quantity = req.quantity.max(1);
    if quantity > max_quantity {
        return Err(CheckoutError::QuantityTooLarge {
            requested: quantity,
            max: max_quantity,
        });
    }
    Ok(Order {
        user: &req.user_id,
        quantity,
        request_id: &req.request_id,
        round: req.round,
    })
}

/// Checks a reset request; an absent stock means `default_stock`.
pub fn reset(
    req: &pb::ResetRequest,
    default_stock: i64,
) -> Result<(i64, Option<Strategy>), CheckoutError> {
    let stock = req.stock.unwrap_or(default_stock);
    if stock < 0 {
        return Err(CheckoutError::NegativeStock(stock));
    }
    let strategy =
        Strategy::from_wire(req.safe_strategy).map_err(CheckoutError::UnknownStrategy)?;
    Ok((stock, strategy))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(user: &str, quantity: u32) -> pb::PurchaseRequest {
        pb::PurchaseRequest {
            user_id: user.into(),
            quantity,
            ..Default::default()
        }
    }

    #[test]
    fn purchase_rules() {
        assert_eq!(order(&req("u", 0), 10).unwrap().quantity, 1);
        assert_eq!(order(&req("u", 10), 10).unwrap().quantity, 10);
        assert!(matches!(
            order(&req("", 1), 10),
            Err(CheckoutError::MissingUserId)
        ));
        assert!(matches!(
            order(&req("u", 11), 10),
            Err(CheckoutError::QuantityTooLarge {
                requested: 11,
                max: 10
            })
        ));
        assert!(order(&req(&"x".repeat(128), 1), 10).is_ok());
        let with_id = |id: &str| pb::PurchaseRequest {
            request_id: id.into(),
            round: 7,
            ..req("u", 1)
        };
        let ok = with_id(&"r".repeat(128));
        let order_ok = order(&ok, 10).unwrap();
        assert_eq!((order_ok.request_id.len(), order_ok.round), (128, 7));
        assert!(matches!(
            order(&with_id(&"r".repeat(129)), 10),
            Err(CheckoutError::RequestIdTooLong(129))
        ));
        assert!(matches!(
            order(&req(&"x".repeat(129), 1), 10),
            Err(CheckoutError::UserIdTooLong(129))
        ));
    }

    #[test]
    fn reset_rules() {
        let r = |stock, safe_strategy| pb::ResetRequest {
            stock,
            safe_strategy,
        };
        assert_eq!(reset(&r(None, 0), 100).unwrap(), (100, None));
        assert_eq!(
            reset(&r(Some(0), 1), 100).unwrap(),
            (0, Some(Strategy::Mutex))
        );
        assert!(matches!(
            reset(&r(Some(-1), 0), 100),
            Err(CheckoutError::NegativeStock(-1))
        ));
        assert!(matches!(
            reset(&r(Some(1), 9), 100),
            Err(CheckoutError::UnknownStrategy(9))
        ));
    }
}
